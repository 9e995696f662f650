"""Exponential moving average of the generator's weights (Yazici et al. 2019, "The
Unusual Effectiveness of Averaging in GAN Training"; StyleGAN, BigGAN): sample grids and
the exported generator use the average, which is smoother than the live weights.

Two things decide whether the average beats the weights it averages (measured in
docs/recipes.md, "What we ship"):

- Its horizon. A fixed decay (0.999: a 693-step half-life) remembers weights from long
  before, which in a run of a few thousand steps are much worse than today's: the
  average is blurred and washed out. Here the half-life is counted in images, as in
  StyleGAN2-ADA (Karras et al. 2020): `half_life_kimg` thousand images, but never more
  than `rampup` times the images seen so far (ema_kimg, ema_rampup). Early in a run the
  average follows G closely; the horizon grows with the run. beta = 0.5 ** (batch /
  half_life_images) per G step; a function of the step alone, so a resumed run
  continues exactly.
- BatchNorm statistics. Averaging the running means and variances along with the
  weights gives statistics that match no network: the averaged weights produce other
  activations than any of the networks whose statistics were averaged. Only the
  parameters are averaged here; BatchNorm's running statistics of the averaged
  generator are computed from its own activations ("standing statistics", Brock et al.
  2019, BigGAN) whenever it is shown: grids, checkpoints, the export. Those forwards
  draw latents from a generator seeded once for all, so the statistics are a function
  of the averaged weights alone and resume stays bit-exact.

The update is torch's own `torch.optim.swa_utils.get_ema_multi_avg_fn` (one fused
`_foreach_lerp_` per step), with nothing read back to the host.
"""

from __future__ import annotations

import copy
from typing import Dict

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

CALIBRATION_SEED = 20190129  # latents of the standing statistics: fixed, independent of the run's streams
# Images the standing statistics are computed from, at every checkpoint, grid and export.
# scripts/studies/ema_calibration_study.py on afg.pt: the faces of 64 latents differ from those of
# statistics over 16,384 images by 1.3-1.6 of 255 on average from 512 images up (2048: 1.3,
# the largest pixel 15 instead of 17), at half the time of 2048 (~1.7 s instead of ~3.4 s at
# full width on one CPU core, at every checkpoint).
CALIBRATION_IMAGES = 1024


class GeneratorEMA:
    """The average of `model` (the live generator it follows, given once)."""

    def __init__(self, model: nn.Module, half_life_kimg: float = 10.0, rampup: float = 0.05,
                 batch_size: int = 128, calibration_images: int = CALIBRATION_IMAGES):
        self.half_life_kimg, self.rampup, self.batch_size = half_life_kimg, rampup, batch_size
        self.calibration_images = calibration_images
        self.live = model
        self.module = copy.deepcopy(model).requires_grad_(False)
        # The tensors are paired once: loading weights, resuming or torch.compile change
        # their values in place, never the objects, so the pairs stay valid for the run.
        self._ema_params = [p.detach() for p in self.module.parameters()]
        self._params = [p.detach() for p in model.parameters()]
        self._calibrated = False  # do the averaged generator's buffers match its weights?

    def half_life_images(self, step: int) -> float:
        """Images over which the average halves the weight of the past, at `step`."""
        images = self.half_life_kimg * 1000.0
        if self.rampup > 0:
            images = min(images, self.rampup * step * self.batch_size)
        return images

    def beta_at(self, step: int) -> float:
        """The weight of the old average in the update of `step` (0: copy G)."""
        return 0.5 ** (self.batch_size / max(self.half_life_images(step), 1e-8))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """ema = b * ema + (1 - b) * model for every parameter, b = beta_at(step)."""
        get_ema_multi_avg_fn(self.beta_at(step))(self._ema_params, self._params, None)
        self._calibrated = False

    def averaged(self) -> nn.Module:
        """The averaged generator with buffers that belong to its weights (see above)."""
        if not self._calibrated:
            calibrate(self.module, self.live, self.calibration_images, self.batch_size)
            self._calibrated = True
        return self.module

    @torch.no_grad()
    def reset(self) -> None:
        """Start the average over from the generator's current weights."""
        for e, m in zip(self._ema_params, self._params):
            e.copy_(m)
        self._calibrated = False

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return self.averaged().state_dict()

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
        self._calibrated = False  # files of older versions hold averaged statistics


def batchnorms(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def calibrate(averaged: nn.Module, live: nn.Module, images: int = CALIBRATION_IMAGES, batch_size: int = 128,
              seed: int = CALIBRATION_SEED) -> None:
    """Give `averaged` the buffers of its own weights: every buffer is first copied from
    `live` (spectral-norm vectors, counters: a close start), then BatchNorm's running
    statistics are recomputed as the plain mean over `images` generated images, in
    training mode (batch statistics, as G is trained) and fp32 (as it is sampled).

    Latents come from a generator seeded with `seed` (CALIBRATION_SEED in training), and
    so does dropout (if any), which draws from the global stream: that is seeded for the
    calibration and restored afterwards. The statistics are a function of the weights alone, and training
    never sees a difference."""
    for mine, theirs in zip(averaged.buffers(), live.buffers()):
        mine.copy_(theirs)
    norms = batchnorms(averaged)
    if not norms:
        return
    device = next(averaged.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    momenta = [bn.momentum for bn in norms]
    was_training = averaged.training
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        averaged.train()
        done = 0
        while done < images:
            n = min(batch_size, images - done)
            averaged(torch.randn(n, averaged.nz, 1, 1, device=device, generator=rng))
            done += n
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    averaged.train(was_training)
