"""The two optimizers, one per network, from the optimizer config."""

from __future__ import annotations

import torch

from animegan.choices import OPTIMIZERS
from animegan.config import OptimizerConfig
from animegan.errors import AnimeganError


def adam(params, lr: float, conf: OptimizerConfig) -> torch.optim.Optimizer:
    # The fused kernel updates all parameters in one pass (one launch on CUDA).
    return torch.optim.Adam(params, lr=lr, betas=tuple(conf.betas), weight_decay=conf.weight_decay, fused=True)


def sgd(params, lr: float, conf: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=conf.momentum, weight_decay=conf.weight_decay)


def rmsprop(params, lr: float, conf: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, momentum=conf.momentum, weight_decay=conf.weight_decay)


def build_optimizers(conf: OptimizerConfig, generator: torch.nn.Module, discriminator: torch.nn.Module):
    """(opt_g, opt_d), each the optimizer registered as conf.name in animegan.choices.
    lr_g / lr_d, when set, override lr for one network (two-timescale)."""
    if conf.name not in OPTIMIZERS:
        raise AnimeganError(f"unknown optimizer '{conf.name}'; available: {', '.join(OPTIMIZERS)}")
    make = OPTIMIZERS[conf.name].load()
    opt_g = make(generator.parameters(), conf.lr_g if conf.lr_g is not None else conf.lr, conf)
    opt_d = make(discriminator.parameters(), conf.lr_d if conf.lr_d is not None else conf.lr, conf)
    return opt_g, opt_d
