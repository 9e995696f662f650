"""Score every exported generator of some runs (or of every job of a sweep) with an FD
meter, draw a 64-face grid of each, and print one table: the search's measurements.

    python scripts/studies/score_runs.py multirun/2026-12-01/06-00-00 --fd /path/to/animefd
    python scripts/studies/score_runs.py outputs/run_a outputs/run_b --fd /path/to/animefd --fd-args "--n 2000"

A run directory's exports are `checkpoints/generator.pt` (the end of the run) and, with
checkpoint.snapshot_minutes, the snapshots `snapshots/generator-<M>min.pt`; a folder of
`generator-<M>min.pt` files (what scripts/bench/classic_dcgan.py writes) or any `.pt` export given
directly is scored as well. The FD
meter is any command that takes a generator file and prints `FD32 <x>  FD64 <y>` (the
project measures with an anime-tuned ResNet Frechet distance, see docs/recipes.md). Each
score is cached beside the export (`<file>.fd.json`, keyed by the meter's arguments),
each grid written as `<file>.png`: look at the grids, a number that improves while the
faces get worse is a broken measurement. A collapse shows in two more columns, measured
on the grid's 64 faces: the RMS pixel distance (0-1 scale) of the closest pair and the
median pair. Copies of one face bring the closest pair near 0; distinct faces of a trained
generator stay far from it (real faces: median ~0.3). Writes `scores.csv` into the first directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from animegan.artefacts import tile_images
from animegan.sampling import generate
from animegan.face_generator import load_generator

FD_LINE = re.compile(r"FD32 ([0-9.]+)\s+FD64 ([0-9.]+)")
MINUTES = re.compile(r"-([0-9.e+-]+)min\.pt$")  # generator-<M>min.pt: a snapshot after M minutes of training


def exports_of(path: Path):
    if path.is_file():
        return [path]
    runs = [path] if (path / "checkpoints").is_dir() else sorted(p for p in path.iterdir() if (p / "checkpoints").is_dir())
    found = [f for run in runs for f in [*sorted(run.glob("snapshots/generator-*min.pt"), key=_minutes),
                                          *run.glob("checkpoints/generator.pt")]]
    return found or sorted(path.glob("generator-*min.pt"), key=_minutes)


def _minutes(export: Path) -> float:
    match = MINUTES.search(export.name)
    return float(match.group(1)) if match else float("inf")


def label_of(export: Path) -> str:
    run = export.parent.parent if export.parent.name in ("checkpoints", "snapshots") else export.parent
    status = run / "job_status.json"
    if status.is_file():
        return " ".join(json.loads(status.read_text())["overrides"]) or run.name
    overrides = run / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        lines = [ln[2:].strip() for ln in overrides.read_text().splitlines() if ln.startswith("- ")]
        return " ".join(x for x in lines if not x.startswith(("hydra.", "dataset."))) or run.name
    return run.name


def score(export: Path, fd: str, fd_args: str) -> dict:
    cache = export.with_name(export.name + ".fd.json")
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("fd_args") == fd_args and cached.get("mtime") == export.stat().st_mtime:
            return cached
    out = subprocess.run([*shlex.split(fd), str(export), *shlex.split(fd_args)], capture_output=True, text=True)
    match = FD_LINE.search(out.stdout)
    if not match:
        sys.exit(f"score_runs: no FD line from {fd} for {export}:\n{out.stdout}\n{out.stderr}")
    result = {"fd32": float(match.group(1)), "fd64": float(match.group(2)), "fd_args": fd_args,
              "mtime": export.stat().st_mtime}
    cache.write_text(json.dumps(result))
    return result


def faces_of(export: Path, n: int = 64) -> torch.Tensor:
    """The grid's faces: n uint8 images from latent seed 0, as `animegan-sample --seed 0` draws them."""
    return next(generate(load_generator(export, torch.device("cpu")).network, n, seed=0, chunk=n))


def pair_distances(faces: torch.Tensor) -> tuple:
    """(closest, median) RMS distance between the faces, pixel values in [0, 1]."""
    n = len(faces)
    flat = faces.reshape(n, -1).float() / 255
    dist = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    pairs = dist[torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)]
    return pairs.min().item(), pairs.median().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="run directories, sweep directories or export files")
    p.add_argument("--fd", help="the FD meter command (without it: only the grids and the pair distances)")
    p.add_argument("--fd-args", default="", help="extra arguments for the meter, e.g. '--n 2000 --ref faces/'")
    p.add_argument("--no-grids", action="store_true")
    args = p.parse_args()

    rows = []
    for path in args.paths:
        for export in exports_of(path):
            meta = torch.load(export, map_location="cpu", weights_only=True)
            minute = MINUTES.search(export.name)
            conf = meta.get("config", {})
            batch = conf.get("batch_size", 128)
            step = meta.get("step")
            rate = step * batch / (float(minute.group(1)) * 60) if minute and step else None
            faces = faces_of(export)  # drawn once: the grid and the pair distances
            if not args.no_grids and not export.with_suffix(".png").is_file():
                Image.fromarray(tile_images(faces)).save(export.with_suffix(".png"))
            fd = score(export, args.fd, args.fd_args) if args.fd else {"fd32": float("nan"), "fd64": float("nan")}
            closest, median = pair_distances(faces)
            rows.append({"run": label_of(export), "export": str(export), "minutes": minute.group(1) if minute else "end",
                         "step": step, "images_per_s": f"{rate:.0f}" if rate else "", "FD32": fd["fd32"],
                         "FD64": fd["fd64"], "closest_pair": f"{closest:.3f}", "median_pair": f"{median:.3f}"})
            r = rows[-1]
            fds = f"{r['FD32']:7.2f} {r['FD64']:7.2f}" if args.fd else f"{'-':>7} {'-':>7}"
            print(f"{fds}  step {str(r['step']):>6}  {r['minutes']:>5} min  "
                  f"{r['images_per_s']:>4} img/s  pairs {closest:.3f}/{median:.3f}  {r['run']}", flush=True)
    first = args.paths[0] if args.paths[0].is_dir() else args.paths[0].parent
    with open(first / "scores.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
