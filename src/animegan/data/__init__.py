"""Datasets: each one ends as an ImageBank of uint8 images at the model's size."""

from __future__ import annotations

from animegan.config import DatasetConfig
from animegan.data.bank import ImageBank
from animegan.errors import AnimeganError

__all__ = ["ImageBank", "build_image_bank"]


def build_image_bank(conf: DatasetConfig, image_size: int, seed: int) -> ImageBank:
    if conf.kind == "synthetic":
        from animegan.data.synthetic import render_faces

        images = render_faces(conf.num_images, image_size, seed=seed)
    elif conf.kind == "folder":
        from animegan.data.folder import read_folder

        images = read_folder(conf.root, image_size, name=conf.name, source=conf.source)
    else:
        raise AnimeganError(f"unknown dataset kind '{conf.kind}'; allowed: synthetic, folder")
    return ImageBank(images, flip=conf.flip)
