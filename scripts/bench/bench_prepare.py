"""Benchmark the dataset preparation cache on a real folder.

Reports: preparation time and images/s (a fresh build), the CPU time it used, cache size,
the time to check and load an existing cache, peak RSS (this process and the decoding
workers), and the share of a training step spent on data once the cache is loaded
(ImageBank.batch for a whole epoch, against the measured step of the real-data default).

    nice -n 10 python scripts/bench/bench_prepare.py --root path/to/anime-faces --cache-dir /tmp/bench-cache

The cache folder for this root under --cache-dir is deleted first, so the build is fresh.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from animegan.config import DatasetConfig
from animegan.data.bank import ImageBank
from animegan.data.cache import cache_folder, prepare
from animegan.data.folder import check_root
from animegan.run import build_training, speed_settings
from animegan.step import gan_step


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def data_seconds_per_batch(bank: ImageBank, batch_size: int, channels_last: bool) -> float:
    """One full epoch of batches exactly as the loop asks for them."""
    order, rng = bank.epoch_order(0, 0), torch.Generator().manual_seed(1)
    n = bank.batches_per_epoch(batch_size)
    start = time.perf_counter()
    for b in range(n):
        bank.batch(order[b * batch_size:(b + 1) * batch_size], rng, channels_last)
    return (time.perf_counter() - start) / n


def step_seconds(root: str, size: int, batch_size: int, steps: int, tiny: bool = False) -> tuple:
    """Seconds per step of the README's real-data default on this folder at `size` px, its
    objects built by the functions run_training uses (R1 and the EMA included), warm."""
    from animegan.compose import compose_config, resolve_config
    from animegan.distributed import ProcessGroup, Ranks
    from animegan.resume import data_order

    overrides = ["dataset=folder", f"dataset.root={root}", f"model.image_size={size}", f"batch_size={batch_size}",
                 "device=cpu", *(["model.ngf=8", "model.ndf=8", "train.ema_calibration_images=64"] if tiny else [])]
    conf = resolve_config(compose_config(overrides), overrides, os.getcwd())
    device = torch.device("cpu")
    precision, channels_last = speed_settings(conf, device)

    def run(n_steps: int) -> float:
        bank = ImageBank(torch.randint(0, 256, (batch_size * n_steps, 3, size, size), dtype=torch.uint8))
        _, parts = build_training(conf, device, precision, channels_last, data_order(conf, None), n_steps,
                                  ProcessGroup(Ranks()))
        order = bank.epoch_order(0, 0)
        start = time.perf_counter()
        metrics = [gan_step(parts, bank.batch(order[b * batch_size:(b + 1) * batch_size], parts.rng, channels_last), b)
                   for b in range(n_steps)]
        torch.stack(metrics).cpu()  # wait for the device
        return (time.perf_counter() - start) / n_steps

    run(1)  # warm-up: first-call allocations and kernel selection
    return run(steps), channels_last


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="folder of images")
    p.add_argument("--size", type=int, default=64, help="resolution (default 64)")
    p.add_argument("--cache-dir", default="/tmp/animegan-bench-cache", help="cache home (emptied for this root)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: one per core)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="training steps timed for the step time")
    p.add_argument("--tiny", action="store_true", help="tiny nets (ngf=ndf=8) for the step: checks the script runs")
    args = p.parse_args()

    conf = DatasetConfig(name="bench", kind="folder", root=args.root, cache_dir=args.cache_dir, workers=args.workers)
    shutil.rmtree(cache_folder(conf, check_root(conf.root, conf.name, "")), ignore_errors=True)

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    built = prepare(conf, args.size, progress=False)
    build_s, build_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    m = built.manifest
    t0 = time.perf_counter()
    checked = prepare(conf, args.size, progress=False)  # list + fingerprint + manifest check only
    check_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    images = torch.from_numpy(np.load(checked.data_path))
    load_s = time.perf_counter() - t0
    assert not checked.built and images.shape[0] == m["kept"]
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    step_s, channels_last = step_seconds(args.root, args.size, args.batch_size, args.steps, args.tiny)
    data_s = data_seconds_per_batch(ImageBank(images), args.batch_size, channels_last)
    batches = m["kept"] // args.batch_size

    rows = [
        ("folder", f"{Path(args.root).resolve()} ({m['files']} files)"),
        ("prepare (fresh build)", f"{build_s:.2f} s, {m['files'] / build_s:.0f} images/s wall, "
                                  f"{build_cpu:.1f} CPU-s ({m['files'] / build_cpu:.0f} images per CPU-s)"),
        ("kept / dropped", f"{m['kept']} / {m['dropped'] or 0}"),
        ("cache", f"{checked.data_path} ({m['data_bytes'] / 2**20:.1f} MiB, {args.size} px)"),
        ("check existing cache", f"{check_s:.3f} s (list + fingerprint + manifest)"),
        ("load cache (np.load)", f"{load_s:.3f} s"),
        ("peak RSS", f"main {rss_self:.0f} MiB, largest worker {rss_workers:.0f} MiB "
                     f"(the dataset alone is {m['data_bytes'] / 2**20:.0f} MiB)"),
        ("train step (CPU)", f"{step_s * 1e3:.0f} ms at batch {args.batch_size} "
                             f"({torch.get_num_threads()} threads, channels_last={channels_last})"),
        ("data per batch", f"{data_s * 1e3:.2f} ms (ImageBank.batch: gather, scale, flip)"),
        ("data share of an epoch", f"{100 * data_s / step_s:.2f} % "
                                   f"({batches} batches: {batches * data_s:.1f} s data of {batches * step_s:.0f} s)"),
    ]
    width = max(len(k) for k, _ in rows) + 2
    print("\n".join(f"{k:<{width}}{v}" for k, v in rows))


if __name__ == "__main__":
    main()
