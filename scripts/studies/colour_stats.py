"""Colour statistics of generated faces against real ones: per-channel mean and standard
deviation, HSV saturation and value, and the mean per-face contrast (std of the luma), over
2,000 faces of each generator (latent seed 1) and 2,000 real files resized to 64 px. A
generator whose faces drift grey or flat shows it here before it shows in a grid.

    python scripts/studies/colour_stats.py --ref FACES run/snapshots/generator-epoch_0{14,22,30}.pt
"""

from __future__ import annotations

import argparse
import glob
import os

import numpy as np
import torch
from PIL import Image

import animegan
from animegan.sampling import generate


def stats(images: np.ndarray) -> str:
    """images: uint8 [N, 64, 64, 3]."""
    f = images.astype(np.float32) / 255
    mx, mn = f.max(-1), f.min(-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0).mean()
    luma = f @ np.array([0.299, 0.587, 0.114], np.float32)
    m, sd = f.mean((0, 1, 2)), f.std((0, 1, 2))
    return (f"mean {m[0]:.3f} {m[1]:.3f} {m[2]:.3f}  std {sd[0]:.3f} {sd[1]:.3f} {sd[2]:.3f}  sat {sat:.3f}  "
            f"val {mx.mean():.3f}  contrast {luma.std((1, 2)).mean():.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generators", nargs="+", help="generator exports or training checkpoints")
    p.add_argument("--ref", required=True, help="a folder of real faces")
    p.add_argument("--n", type=int, default=2000)
    a = p.parse_args()
    files = sorted(glob.glob(os.path.join(a.ref, "**", "*.jpg"), recursive=True) +
                   glob.glob(os.path.join(a.ref, "**", "*.png"), recursive=True))[: a.n]
    real = np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
                     for f in files])
    print(f"{'real':32s} {stats(real)}")
    for path in a.generators:
        network = animegan.load_generator(path, device="cpu").network
        faces = torch.cat(list(generate(network, a.n, seed=1))).permute(0, 2, 3, 1).numpy()
        print(f"{os.path.basename(path):32s} {stats(faces)}", flush=True)


if __name__ == "__main__":
    main()
