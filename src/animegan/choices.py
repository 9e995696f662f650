"""What each choosable part of a run may be called, in one place: validation offers exactly
these names, and the builders look their implementations up here.

Kept free of torch (an entry names where its implementation lives, imported only when
built), so that a refused config is refused without importing torch. Adding a loss is one
entry here, its class in animegan.losses, and its test; a configs/loss/<name>.yaml makes it
a group option with settings of its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, Tuple


@dataclass(frozen=True)
class Choice:
    target: str  # "module:attribute" of the implementation
    options: Tuple[str, ...] = ()  # keys of its config section that only this choice reads

    def load(self) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


LOSSES: Dict[str, Choice] = {
    "bce": Choice("animegan.losses:BCELoss"),
    "hinge": Choice("animegan.losses:HingeLoss"),
    "wgan_gp": Choice("animegan.losses:WGANGPLoss", options=("gp_weight",)),
    "lsgan": Choice("animegan.losses:LSGANLoss"),
    "rpgan": Choice("animegan.losses:RpGANLoss"),
}
OPTIMIZERS: Dict[str, Choice] = {
    "adam": Choice("animegan.optimizers:adam", options=("betas",)),
    "sgd": Choice("animegan.optimizers:sgd", options=("momentum",)),
    "rmsprop": Choice("animegan.optimizers:rmsprop", options=("momentum",)),
}
AUGMENTATIONS: Dict[str, Choice] = {  # DiffAugment's transforms, applied in the order given
    "color": Choice("animegan.augment:color"),
    "translation": Choice("animegan.augment:translation"),
    "cutout": Choice("animegan.augment:cutout"),
}
# train.precision: the autocast dtype of each (a torch attribute name; None: no autocast).
# auto picks one of the others (animegan.precision.resolve_precision).
PRECISIONS: Dict[str, Any] = {"auto": None, "fp32": None, "bf16": "bfloat16", "fp16": "float16"}
