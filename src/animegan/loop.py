"""The training loop: alternating discriminator and generator updates, and nothing else.

Everything around it (building objects, checkpoints, grids, plots) lives in run.py and
reaches the loop as callbacks, so this file reads top to bottom as the algorithm.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, List, Optional

import torch
from tqdm import tqdm

from animegan.data.bank import ImageBank
from animegan.ema import GeneratorEMA
from animegan.losses import gradient_penalty, r1_penalty
from animegan.precision import LossScaling

MetricRows = List[List[float]]  # [epoch, step, loss_D, loss_G, D(x), D(G(z))] per step


def train(
    *,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    loss,                                        # animegan.losses: .discriminator() and .generator()
    bank: ImageBank,                             # training images, served as batches in [-1, 1]
    rng: torch.Generator,                        # all randomness (flips, latents, noise, DiffAugment, GP); checkpointed
    epochs: int,                                 # train until this many epochs are complete
    batch_size: int = 128,
    nz: int = 100,                               # latent size
    d_steps: int = 1,                            # discriminator updates per batch
    g_steps: int = 1,                            # generator updates per batch
    instance_noise: float = 0.0,                 # std of noise on D's inputs at step 0, linearly down to 0 ...
    instance_noise_epochs: float = 6.0,          # ... at this many epochs (not `epochs`: resume with more stays exact)
    augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,  # DiffAugment on every D input (augment.py)
    r1_gamma: float = 0.0,                       # R1 penalty weight on real images (0: off)
    r1_every: int = 1,                           # lazy R1: every N steps, scaled by N
    ema: Optional[GeneratorEMA] = None,          # updated after every G step (ema.py)
    seed: int = 0,                               # batch order is a function of (seed, epoch)
    start_epoch: int = 0,                        # epochs already complete (resume)
    start_step: int = 0,                         # steps already done in total (resume)
    start_step_in_epoch: int = 0,                # batches already done in epoch `start_epoch` (resume)
    autocast_dtype: Optional[torch.dtype] = None,  # e.g. torch.bfloat16; None = fp32
    scaling: Optional[LossScaling] = None,       # backward + step of each network (fp16: loss-scaled); None = plain
    channels_last: bool = False,                 # feed NHWC batches (models converted by the caller)
    log_every: int = 25,                         # steps between host reads of the metrics
    on_metrics: Callable[[MetricRows], Optional[bool]] = lambda rows: None,  # rows every log_every steps; True: stop
    on_epoch_end: Callable[[int, int], Optional[bool]] = lambda epoch, step: None,  # (epochs complete, step); True: stop
    on_step_checkpoint: Optional[Callable[[int, int, int], None]] = None,  # (epoch, step, step_in_epoch)
    every_n_steps: int = 0,                      # call on_step_checkpoint this often (0: never)
    show_progress: bool = True,
) -> int:
    """Run epochs `start_epoch`..`epochs-1`; return the total step count reached.

    When `on_metrics` returns True (divergence guard, time budget) the loop stops after
    that log window: mid-epoch it calls `on_step_checkpoint` (the caller decides whether
    the state is worth saving), at an epoch's end `on_epoch_end` as usual."""
    device = rng.device
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )

    fade_steps = max(1.0, instance_noise_epochs * bank.batches_per_epoch(batch_size))
    scaling = scaling or LossScaling(device, enabled=False)

    def noise() -> torch.Tensor:
        return torch.randn(batch_size, nz, 1, 1, device=device, generator=rng)

    def instance_noise_for(step: int, like: torch.Tensor) -> Optional[torch.Tensor]:
        """Instance noise (Sonderby et al. 2016): Gaussian noise on D's inputs, so real and
        fake images overlap a little and D cannot win early on tiny pixel differences; it
        fades out over `instance_noise_epochs` (a horizon of its own: were it the run's
        length, "1 epoch, then resume to 2" would follow another schedule than "2 epochs").
        One draw per step serves every D input of that step: drawing from a seeded CPU
        generator is single-threaded, and three draws cost ~20% of a DCGAN-64 step on 2 cores."""
        sigma = instance_noise * max(0.0, 1.0 - step / fade_steps)
        return torch.empty_like(like).normal_(0.0, sigma, generator=rng) if sigma > 0 else None

    def train_step(real: torch.Tensor, step: int) -> torch.Tensor:
        eps = instance_noise_for(step, real)
        r1_now = r1_gamma > 0 and step % r1_every == 0

        def d_input(x: torch.Tensor) -> torch.Tensor:
            """What D sees of an image batch, real or fake alike: DiffAugment, then instance noise."""
            x = x if augment is None else augment(x)
            return x if eps is None else x + eps

        # One generator forward serves the first D update (detached) and the first G update.
        with autocast:
            fake_with_grad = fake = generator(noise())
        for i in range(d_steps):
            if i > 0:  # extra D updates (e.g. WGAN's n_critic) see fresh fakes
                with torch.no_grad(), autocast:
                    fake = generator(noise())
            opt_d.zero_grad(set_to_none=True)
            with autocast:
                real_in = d_input(real).requires_grad_(r1_now)  # R1 differentiates D(x) w.r.t. x
                fake_in = d_input(fake.detach())  # no gradient into G here
                real_logits = discriminator(real_in)
                fake_logits = discriminator(fake_in)
                real_loss, fake_loss = loss.discriminator(real_logits, fake_logits)
                loss_d = real_loss + fake_loss
                if loss.gp_weight > 0:  # wgan_gp
                    loss_d = loss_d + loss.gp_weight * gradient_penalty(discriminator, real_in, fake_in, rng,
                                                                        scaling.grad_scale("D"))
                if r1_now:
                    loss_d = loss_d + (r1_gamma / 2 * r1_every) * r1_penalty(real_logits, real_in,
                                                                             scaling.grad_scale("D"))
            scaling.step("D", loss_d, opt_d)

        # G's updates need gradients through D's input, not D's weights: skip computing those.
        discriminator.requires_grad_(False)
        fake = fake_with_grad
        for j in range(g_steps):
            if j > 0:
                with autocast:
                    fake = generator(noise())
            opt_g.zero_grad(set_to_none=True)
            with autocast:
                loss_g = loss.generator(discriminator(d_input(fake)))
            scaling.step("G", loss_g, opt_g)
            if ema is not None:
                ema.update(step)
        discriminator.requires_grad_(True)

        # Stay on the device: the host reads these only every `log_every` steps.
        return torch.stack([
            loss_d.detach().float(), loss_g.detach().float(),
            torch.sigmoid(real_logits.detach().float()).mean(), torch.sigmoid(fake_logits.detach().float()).mean(),
        ])

    step = start_step
    for epoch in range(start_epoch, epochs):
        order = bank.epoch_order(seed, epoch)
        n_batches = bank.batches_per_epoch(batch_size)
        first = start_step_in_epoch if epoch == start_epoch else 0
        bar = tqdm(total=n_batches, initial=first, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                   disable=not show_progress, leave=False, dynamic_ncols=True)
        pending: List[torch.Tensor] = []
        window_start, window_images = time.perf_counter(), 0
        stop = False

        def flush() -> None:
            nonlocal pending, window_start, window_images, stop
            if not pending:
                return
            values = torch.stack(pending).cpu()  # the one host sync per log window
            first_step = step - len(pending) + 1
            rows = [[epoch + 1, first_step + k, *v.tolist()] for k, v in enumerate(values)]
            stop = bool(on_metrics(rows)) or stop
            elapsed = time.perf_counter() - window_start
            loss_d, loss_g, d_x, d_gz = values[-1].tolist()
            bar.set_postfix(loss_D=f"{loss_d:.3f}", loss_G=f"{loss_g:.3f}", D_x=f"{d_x:.2f}", D_G_z=f"{d_gz:.2f}",
                            img_s=f"{window_images / max(elapsed, 1e-9):.0f}", refresh=False)
            bar.update(len(pending))
            pending, window_start, window_images = [], time.perf_counter(), 0

        done = first
        for b in range(first, n_batches):
            real = bank.batch(order[b * batch_size:(b + 1) * batch_size], rng, channels_last)
            pending.append(train_step(real, step))
            step += 1
            done = b + 1
            window_images += batch_size
            if len(pending) >= log_every:
                flush()
            if stop:
                break
            if on_step_checkpoint and every_n_steps and step % every_n_steps == 0 and b + 1 < n_batches:
                flush()  # metrics.csv must not lag behind the checkpoint
                on_step_checkpoint(epoch, step, b + 1)
        flush()
        bar.close()
        if done < n_batches:  # stopped inside the epoch
            if on_step_checkpoint:
                on_step_checkpoint(epoch, step, done)
            return step
        if on_epoch_end(epoch + 1, step) or stop:
            return step
    return step
