"""Make a generator export fit to ship: weights stored in half precision (half the size;
they are cast back to fp32 when loaded) and the machine's paths dropped from its config.
Prints how far the half-precision faces are from the fp32 ones, so you can judge the cast.

    python scripts/release/ship_generator.py outputs/<run>/checkpoints/afg.pt checkpoints/afg.pt

This is how checkpoints/afg.pt was made (checkpoints/README.md).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from animegan.checkpoint import load_checkpoint, save_checkpoint
from animegan.sampling import generate
from animegan.face_generator import load_generator

MB = 2**20


def half_precision(export: dict) -> dict:
    """The export with fp16 weights and a config that names no path of this machine."""
    shipped = copy.deepcopy(export)
    shipped["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in export["state_dict"].items()}
    dataset = shipped["config"]["dataset"]
    if dataset.get("root"):
        dataset["root"] = Path(dataset["root"]).name  # the folder's name says which faces; the rest is this machine
    dataset["cache_dir"] = None
    return shipped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", type=Path, help="a generator export (generator.pt, afg.pt) written by animegan-train")
    p.add_argument("out", type=Path, help="where to write the file to ship")
    p.add_argument("--n", type=int, default=256, help="faces compared between the fp32 and fp16 weights")
    args = p.parse_args()

    export = load_checkpoint(args.export)
    if export["format"] != "animegan-generator":
        raise SystemExit(f"{args.export} is not a generator export (use the run's checkpoints/<export>.pt)")
    save_checkpoint(half_precision(export), args.out)

    cpu = torch.device("cpu")
    full = torch.cat(list(generate(load_generator(args.export, cpu).network, args.n, seed=0))).float()
    half = torch.cat(list(generate(load_generator(args.out, cpu).network, args.n, seed=0))).float()
    diff = (full - half).abs()
    print(f"wrote {args.out}: {args.out.stat().st_size / MB:.2f} MB (was {args.export.stat().st_size / MB:.2f} MB)")
    print(f"fp16 against fp32 weights, {args.n} faces, 8-bit pixels: mean |diff| {diff.mean():.3f}, "
          f"max {diff.max():.0f}, pixels that differ {(diff > 0).float().mean():.1%}")


if __name__ == "__main__":
    main()
