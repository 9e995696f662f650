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

MetricRows = List[List[float]]  # [epoch, step, loss_D, loss_G, D(x), D(G(z))] per step


def train(
    *,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    loss,                                        # animegan.losses: .discriminator() and .generator()
    bank: ImageBank,                             # training images, served as batches in [-1, 1]
    rng: torch.Generator,                        # flips and latent noise; checkpointed for exact resume
    epochs: int,                                 # train until this many epochs are complete
    batch_size: int = 128,
    nz: int = 100,                               # latent size
    d_steps: int = 1,                            # discriminator updates per batch
    g_steps: int = 1,                            # generator updates per batch
    seed: int = 0,                               # batch order is a function of (seed, epoch)
    start_epoch: int = 0,                        # epochs already complete (resume)
    start_step: int = 0,                         # steps already done in total (resume)
    start_step_in_epoch: int = 0,                # batches already done in epoch `start_epoch` (resume)
    autocast_dtype: Optional[torch.dtype] = None,  # e.g. torch.bfloat16; None = fp32
    channels_last: bool = False,                 # feed NHWC batches (models converted by the caller)
    log_every: int = 25,                         # steps between host reads of the metrics
    on_metrics: Callable[[MetricRows], None] = lambda rows: None,  # gets rows every log_every steps
    on_epoch_end: Callable[[int, int], None] = lambda epoch, step: None,  # (epochs complete, step)
    on_step_checkpoint: Optional[Callable[[int, int, int], None]] = None,  # (epoch, step, step_in_epoch)
    every_n_steps: int = 0,                      # call on_step_checkpoint this often (0: never)
    show_progress: bool = True,
) -> int:
    """Run epochs `start_epoch`..`epochs-1`; return the total step count reached."""
    device = rng.device
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    )

    def noise() -> torch.Tensor:
        return torch.randn(batch_size, nz, 1, 1, device=device, generator=rng)

    def train_step(real: torch.Tensor) -> torch.Tensor:
        # One generator forward serves the first D update (detached) and the first G update.
        with autocast:
            fake_with_grad = fake = generator(noise())
        for i in range(d_steps):
            if i > 0:  # extra D updates (e.g. WGAN's n_critic) see fresh fakes
                with torch.no_grad(), autocast:
                    fake = generator(noise())
            opt_d.zero_grad(set_to_none=True)
            with autocast:
                real_logits = discriminator(real)
                fake_logits = discriminator(fake.detach())  # no gradient into G here
                real_loss, fake_loss = loss.discriminator(real_logits, fake_logits)
                loss_d = real_loss + fake_loss
            loss_d.backward()
            opt_d.step()

        # G's updates need gradients through D's input, not D's weights: skip computing those.
        discriminator.requires_grad_(False)
        fake = fake_with_grad
        for j in range(g_steps):
            if j > 0:
                with autocast:
                    fake = generator(noise())
            opt_g.zero_grad(set_to_none=True)
            with autocast:
                loss_g = loss.generator(discriminator(fake))
            loss_g.backward()
            opt_g.step()
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

        def flush() -> None:
            nonlocal pending, window_start, window_images
            if not pending:
                return
            values = torch.stack(pending).cpu()  # the one host sync per log window
            first_step = step - len(pending) + 1
            rows = [[epoch + 1, first_step + k, *v.tolist()] for k, v in enumerate(values)]
            on_metrics(rows)
            elapsed = time.perf_counter() - window_start
            loss_d, loss_g, d_x, d_gz = values[-1].tolist()
            bar.set_postfix(loss_D=f"{loss_d:.3f}", loss_G=f"{loss_g:.3f}", D_x=f"{d_x:.2f}", D_G_z=f"{d_gz:.2f}",
                            img_s=f"{window_images / max(elapsed, 1e-9):.0f}", refresh=False)
            bar.update(len(pending))
            pending, window_start, window_images = [], time.perf_counter(), 0

        for b in range(first, n_batches):
            real = bank.batch(order[b * batch_size:(b + 1) * batch_size], rng, channels_last)
            pending.append(train_step(real))
            step += 1
            window_images += batch_size
            if len(pending) >= log_every:
                flush()
            if on_step_checkpoint and every_n_steps and step % every_n_steps == 0 and b + 1 < n_batches:
                flush()  # metrics.csv must not lag behind the checkpoint
                on_step_checkpoint(epoch, step, b + 1)
        flush()
        bar.close()
        on_epoch_end(epoch + 1, step)
    return step
