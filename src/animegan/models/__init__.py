"""DCGAN generator and discriminator, sized from the model config."""

from animegan.models.discriminator import Discriminator
from animegan.models.generator import Generator
from animegan.models.init import init_dcgan_weights

__all__ = ["Generator", "Discriminator", "init_dcgan_weights", "count_parameters"]


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())
