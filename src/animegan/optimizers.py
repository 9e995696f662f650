"""The two optimizers, one per network, from the optimizer config."""

from __future__ import annotations

import torch

from animegan.config import OptimizerConfig
from animegan.errors import AnimeganError


def build_optimizers(conf: OptimizerConfig, generator: torch.nn.Module, discriminator: torch.nn.Module):
    """(opt_g, opt_d). lr_g / lr_d, when set, override lr for one network (two-timescale)."""

    def make(params, lr: float) -> torch.optim.Optimizer:
        if conf.name == "adam":
            # The fused kernel updates all parameters in one pass (one launch on CUDA).
            return torch.optim.Adam(params, lr=lr, betas=tuple(conf.betas), weight_decay=conf.weight_decay, fused=True)
        if conf.name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=conf.momentum, weight_decay=conf.weight_decay)
        if conf.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, momentum=conf.momentum, weight_decay=conf.weight_decay)
        raise AnimeganError(f"unknown optimizer '{conf.name}'; available: adam, sgd, rmsprop")

    opt_g = make(generator.parameters(), conf.lr_g if conf.lr_g is not None else conf.lr)
    opt_d = make(discriminator.parameters(), conf.lr_d if conf.lr_d is not None else conf.lr)
    return opt_g, opt_d
