"""torch.hub entries for animegan (https://pytorch.org/docs/stable/hub.html).

    import torch
    faces = torch.hub.load("<owner>/animegan", "afg")             # the shipped generator
    faces = torch.hub.load("path/to/animegan", "afg", source="local")
    faces.grid(64, seed=0)                                         # a PIL image of 64 faces

Each entry returns an animegan.FaceGenerator (sample, sample_images, interpolate, grid),
the same object as animegan.load_generator("afg.pt").
"""

import os
import sys

# What the entries import (module names, as torch.hub checks them): torch, NumPy, Pillow,
# OmegaConf and PyYAML (model configs), tqdm. Hydra is only needed for training.
dependencies = ["torch", "numpy", "PIL", "omegaconf", "yaml", "tqdm"]

_HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import animegan  # noqa: F401  (installed)
except ImportError:  # a checkout torch.hub downloaded: the package is in src/
    sys.path.insert(0, os.path.join(_HERE, "src"))


def afg(pretrained: bool = True, device: str = "auto"):
    """The generator that ships with animegan: DCGAN-64 trained on 20k anime faces
    (checkpoints/README.md says how). pretrained=False: the same network, untrained."""
    from animegan.face_generator import load_generator, untrained_generator

    path = os.path.join(_HERE, "checkpoints", "afg.pt")
    faces = load_generator(path, device)
    return faces if pretrained else untrained_generator(faces.config, device)


def dcgan(config: str = "dcgan64", device: str = "auto", seed: int = 0, **model_overrides):
    """An untrained DCGAN generator from a model config of configs/model/ (dcgan32,
    dcgan64, dcgan128), with any of its keys changed, e.g. dcgan(ngf=32). (Not `model=`:
    torch.hub.load takes that name for the entry.)"""
    from omegaconf import OmegaConf

    from animegan.errors import AnimeganError
    from animegan.face_generator import untrained_generator

    path = os.path.join(_HERE, "configs", "model", f"{config}.yaml")
    if not os.path.isfile(path):
        choices = sorted(n[:-5] for n in os.listdir(os.path.dirname(path)) if n.endswith(".yaml"))
        raise AnimeganError(f"unknown model config '{config}'; available: {', '.join(choices)}")
    model_config = {**OmegaConf.to_container(OmegaConf.load(path)), **model_overrides}
    return untrained_generator(model_config, device, seed)
