"""How many generated images make the averaged generator's BatchNorm statistics stable?

    python scripts/studies/ema_calibration_study.py --ckpt afg.pt

The EMA generator's BatchNorm running statistics are recomputed from its own activations
(animegan.ema.calibrate) at every checkpoint, grid and export of a run with train.ema. This
recomputes them from N images for several N (three latent seeds each), and compares the
faces drawn for 64 fixed latents with those of statistics from 16,384 images: the mean and
the largest pixel difference (0-255). Prints one table.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

import animegan
from animegan.ema import calibrate


def standing_statistics(generator: torch.nn.Module, images: int, seed: int) -> torch.nn.Module:
    """A copy of `generator` with BatchNorm statistics from `images` images of latent `seed`."""
    g = copy.deepcopy(generator)
    calibrate(g, generator, images, batch_size=128, seed=seed)
    return g.eval()


@torch.no_grad()
def faces(generator: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    return generator(z).float().clamp(-1, 1).add(1).mul(127.5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default="afg.pt")
    p.add_argument("--sizes", default="128,256,512,1024,2048,4096")
    a = p.parse_args()
    torch.set_grad_enabled(False)
    network = animegan.load_generator(a.ckpt, "cpu").network
    z = torch.randn(64, network.nz, 1, 1, generator=torch.Generator().manual_seed(0))
    reference = faces(standing_statistics(network, 16384, seed=100), z)
    print(f"{a.ckpt}: faces of 64 fixed latents against statistics from 16,384 images (pixel values 0-255)")
    print(f"{'images':>7} {'seconds':>8} {'mean |diff|':>12} {'max |diff|':>11}   (worst of 3 seeds)")
    for size in (int(s) for s in a.sizes.split(",")):
        means, maxes, seconds = [], [], []
        for seed in (1, 2, 3):
            started = time.perf_counter()
            g = standing_statistics(network, size, seed)
            seconds.append(time.perf_counter() - started)
            diff = (faces(g, z) - reference).abs()
            means.append(diff.mean().item())
            maxes.append(diff.max().item())
        print(f"{size:7d} {min(seconds):8.2f} {max(means):12.2f} {max(maxes):11.1f}")


if __name__ == "__main__":
    main()
