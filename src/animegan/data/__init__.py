"""Datasets: each one ends as an ImageBank of uint8 images at the model's size.

A folder dataset is read through the preparation cache (data/cache.py): decoded once per
resolution, then loaded from one .npy file. torch is imported only when a bank is built,
so `animegan-prepare` and the decoding workers start without it.
"""

from __future__ import annotations

import logging

from animegan.errors import AnimeganError

__all__ = ["ImageBank", "build_image_bank"]

log = logging.getLogger(__name__)


def build_image_bank(conf, image_size: int, seed: int, progress: bool = True):
    """An ImageBank of the dataset `conf` (a DatasetConfig) at `image_size` px."""
    import torch

    from animegan.data.bank import ImageBank

    if conf.kind == "synthetic":
        from animegan.data.synthetic import render_faces

        images = render_faces(conf.num_images, image_size, seed=seed, workers=conf.workers)
    elif conf.kind == "folder":
        from animegan.data.cache import prepare

        prepared = prepare(conf, image_size, progress=progress, load=True)
        m = prepared.manifest
        log.info("dataset '%s': %d of %d files at %dpx, %s cache %s (%.1fs)", conf.name, m["kept"], m["files"],
                 image_size, "built" if prepared.built else "reused", prepared.data_path, prepared.seconds)
        if m["dropped"]:
            log.warning("dataset '%s': dropped %s (list: %s)", conf.name,
                        ", ".join(f"{n} {reason}" for reason, n in m["dropped"].items()),
                        prepared.manifest_path)
        images = torch.from_numpy(prepared.images)
    else:
        raise AnimeganError(f"unknown dataset kind '{conf.kind}'; allowed: synthetic, folder")
    return ImageBank(images, flip=conf.flip)


def __getattr__(name: str):
    if name == "ImageBank":  # lazy: keeps torch out of `import animegan.data.cache`
        from animegan.data.bank import ImageBank

        return ImageBank
    raise AttributeError(f"module 'animegan.data' has no attribute '{name}'")
