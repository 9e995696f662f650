"""One GAN training step: D update(s), then G update(s), then the EMA of G.

`gan_step` is the algorithm and nothing else: no files, no logging, no host reads. It
returns the step's metrics as a tensor on the device; the loop reads them in batches.
Everything it works with is in `StepParts`, built once per run (animegan.run).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from animegan.distributed import ProcessGroup, Ranks, Shard
from animegan.ema import GeneratorEMA
from animegan.losses import gradient_penalty, r1_penalty
from animegan.lr_schedule import LearningRateSchedule
from animegan.precision import LossScaling


@dataclass
class InstanceNoise:
    """Instance noise (Sonderby et al. 2016): Gaussian noise on D's inputs, so real and
    fake images overlap a little and D cannot win early on tiny pixel differences. Its
    std fades linearly from `sigma` to 0 over `fade_steps` (a horizon of its own, not the
    run's length: "1 epoch, then resume to 2" must follow the same schedule as "2 epochs")."""

    sigma: float = 0.0
    fade_steps: float = 1.0

    def at(self, step: int) -> float:
        return self.sigma * max(0.0, 1.0 - step / self.fade_steps)


@dataclass
class StepParts:
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: object                                  # animegan.losses: .discriminator(), .generator(), .gp_weight
    scaling: LossScaling                          # backward + step (fp16: loss-scaled)
    rng: torch.Generator                          # every random draw of the step; checkpointed
    nz: int = 100
    d_steps: int = 1                              # D updates per batch (WGAN's n_critic)
    g_steps: int = 1                              # G updates per batch
    r1_gamma: float = 0.0                         # R1 penalty weight on real images (0: off)
    r2_gamma: float = 0.0                         # R2 penalty weight on fake images (0: off)
    penalty_every: int = 1                             # lazy R1 and R2: every N steps, scaled by N
    instance_noise: InstanceNoise = field(default_factory=InstanceNoise)
    augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None  # DiffAugment on every D input
    ema: Optional[GeneratorEMA] = None            # updated after every G update
    lr_schedule: Optional[LearningRateSchedule] = None  # sets both optimizers' lr before every step
    autocast_dtype: Optional[torch.dtype] = None  # bf16/fp16 autocast; None = fp32
    group: ProcessGroup = field(default_factory=lambda: ProcessGroup(Ranks()))  # gradients averaged over processes

    @property
    def shard(self) -> Shard:
        return self.group.ranks.shard


def gan_step(p: StepParts, real: torch.Tensor, step: int) -> torch.Tensor:
    """Train on one batch of real images; return [loss_D, loss_G, D(x), D(G(z))] on the device."""
    device = real.device
    shard = p.shard
    autocast = torch.autocast(device.type, dtype=p.autocast_dtype) if p.autocast_dtype is not None \
        else contextlib.nullcontext()
    n = real.shape[0]
    if p.lr_schedule is not None:
        p.lr_schedule.apply(step)

    def noise() -> torch.Tensor:  # latents for the global batch; this process keeps its slice
        return shard.take(torch.randn(n * shard.count, p.nz, 1, 1, device=device, generator=p.rng))

    # One draw per step serves every D input of the step: drawing from a seeded CPU
    # generator is single-threaded, and three draws cost ~20% of a DCGAN-64 step on 2 cores.
    sigma = p.instance_noise.at(step)
    eps = shard.take(shard.global_like(real).normal_(0.0, sigma, generator=p.rng)) if sigma > 0 else None
    r1_now = p.r1_gamma > 0 and step % p.penalty_every == 0
    r2_now = p.r2_gamma > 0 and step % p.penalty_every == 0

    def d_input(x: torch.Tensor) -> torch.Tensor:
        """What D sees of an image batch, real or fake alike: DiffAugment, then instance noise."""
        x = x if p.augment is None else p.augment(x)
        return x if eps is None else x + eps

    # One generator forward serves the first D update (detached) and the first G update.
    with autocast:
        fake_with_grad = fake = p.generator(noise())
    for i in range(p.d_steps):
        if i > 0:  # extra D updates (e.g. WGAN's n_critic) see fresh fakes
            with torch.no_grad(), autocast:
                fake = p.generator(noise())
        p.opt_d.zero_grad(set_to_none=True)
        with autocast:
            real_in = d_input(real).requires_grad_(r1_now)  # R1 differentiates D(x) w.r.t. x
            fake_in = d_input(fake.detach()).requires_grad_(r2_now)  # no gradient into G here; R2 needs x
            real_logits = p.discriminator(real_in)
            fake_logits = p.discriminator(fake_in)
            real_loss, fake_loss = p.loss.discriminator(real_logits, fake_logits)
            loss_d = real_loss + fake_loss
            if p.loss.gp_weight > 0:  # wgan_gp
                loss_d = loss_d + p.loss.gp_weight * gradient_penalty(
                    p.discriminator, real_in, fake_in, p.rng, p.scaling.grad_scale("D"), shard)
            if r1_now:
                loss_d = loss_d + (p.r1_gamma / 2 * p.penalty_every) * r1_penalty(
                    real_logits, real_in, p.scaling.grad_scale("D"))
            if r2_now:  # R2: the same penalty on the fakes (R3GAN)
                loss_d = loss_d + (p.r2_gamma / 2 * p.penalty_every) * r1_penalty(
                    fake_logits, fake_in, p.scaling.grad_scale("D"))
        p.scaling.step("D", loss_d, p.opt_d, sync=lambda: p.group.average_gradients(p.discriminator))

    # G's updates need gradients through D's input, not D's weights: skip computing those.
    p.discriminator.requires_grad_(False)
    fake = fake_with_grad
    for j in range(p.g_steps):
        if j > 0:
            with autocast:
                fake = p.generator(noise())
        p.opt_g.zero_grad(set_to_none=True)
        with autocast:
            with torch.no_grad():  # a relativistic loss compares with today's D on the real images
                real_for_g = p.discriminator(d_input(real)) if p.loss.relativistic else None
            loss_g = p.loss.generator(p.discriminator(d_input(fake)), real_for_g)
        p.scaling.step("G", loss_g, p.opt_g, sync=lambda: p.group.average_gradients(p.generator))
        if p.ema is not None:
            p.ema.update(step)
    p.discriminator.requires_grad_(True)

    # Stay on the device: the host reads these only every `log_every` steps.
    return torch.stack([
        loss_d.detach().float(), loss_g.detach().float(),
        torch.sigmoid(real_logits.detach().float()).mean(), torch.sigmoid(fake_logits.detach().float()).mean(),
    ])
