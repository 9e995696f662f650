"""Exponential moving average of the generator's weights (Yazici et al. 2019, "The
Unusual Effectiveness of Averaging in GAN Training"; StyleGAN, BigGAN): sample grids and
the exported generator use the average, which is smoother than the live weights.

The update is torch's own `torch.optim.swa_utils.get_ema_multi_avg_fn` (one fused
`_foreach_lerp_` per step). `AveragedModel.update_parameters` is not used directly: it
tests its `n_averaged` counter on the host at every call (a device sync per step on
CUDA). Here the copy is made when the EMA is created, so every update is the same lerp,
and nothing leaves the device.

Warm-up: the decay used at step t is min(decay, (1 + t) / (10 + t)) (as TensorFlow's
ExponentialMovingAverage with num_updates), so early in a run the average follows G
closely instead of remembering its random start for ~1/(1-decay) steps. It is a
function of the step alone: a resumed run continues exactly.

Parameters and floating-point buffers (BatchNorm running statistics, spectral-norm
vectors) are averaged, as `AveragedModel(use_buffers=True)` does; integer buffers
(BatchNorm's batch counter) are copied.
"""

from __future__ import annotations

import copy
from typing import Dict

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn


class GeneratorEMA:
    """The average of `model` (the live generator it follows, given once)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.module = copy.deepcopy(model).requires_grad_(False)
        # The tensors are paired once: loading weights, resuming or torch.compile change
        # their values in place, never the objects, so the pairs stay valid for the run.
        self._ema_floats, self._ema_others = self._split(self.module)
        self._floats, self._others = self._split(model)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @staticmethod
    def _split(model: torch.nn.Module):
        tensors = [*model.parameters(), *model.buffers()]
        floats = [t.detach() for t in tensors if t.is_floating_point()]
        others = [t.detach() for t in tensors if not t.is_floating_point()]
        return floats, others

    @torch.no_grad()
    def update(self, step: int) -> None:
        """ema = d * ema + (1 - d) * model for every floating tensor, d = decay_at(step)."""
        get_ema_multi_avg_fn(self.decay_at(step))(self._ema_floats, self._floats, None)
        for e, m in zip(self._ema_others, self._others):
            e.copy_(m)

    @torch.no_grad()
    def reset(self) -> None:
        """Start the average over from the generator's current weights."""
        for e, m in zip(self._ema_floats + self._ema_others, self._floats + self._others):
            e.copy_(m)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
