"""Training speed: the classic PyTorch DCGAN example vs animegan's step, side by side.

    python scripts/bench/benchmark.py                      # CPU or CUDA, synthetic faces as JPEGs
    python scripts/bench/benchmark.py --data /path/to/jpgs --rounds 3 --batch 128

`baseline` is pytorch/examples dcgan/main.py's loop as scripts/bench/classic_dcgan.py runs it:
ImageFolder + DataLoader with 2 workers decoding JPEGs every epoch,
Resize/CenterCrop/ToTensor/Normalize, fp32, NCHW, D ending in Sigmoid + BCELoss, Adam 2e-4 /
beta1 0.5, ngf = ndf = 64, nz = 100, and its update order (D on real, D on fake, G on the
same fake with D's weight gradients).
`animegan` is the README's real-data default (R1 every 4 steps, the EMA of G; `compiled`
without R1, which torch.compile cannot differentiate) built by animegan.run.build_training
and stepped by animegan.step.gan_step, on the same images held as a uint8 bank. Each
variant runs in its own child process (so peak RSS is
its own), the children alternate, warm-up steps are excluded, and the median of the timed
windows is reported. Prints a table; numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def run_baseline(data: Path, batch: int, steps: int, device: torch.device):
    """The classic example's loop (scripts/bench/classic_dcgan.py); returns the wall time of each
    step (data loading included). Its grids and checkpoints are left out: they are not part
    of a step."""
    from classic_dcgan import classic_loader, classic_models, classic_steps

    loader = classic_loader(data, batch, workers=2, drop_last=True)
    netG, netD = (m.to(device) for m in classic_models())
    times, t = [], time.perf_counter()
    for _ in classic_steps(loader, netG, netD, device):
        now = time.perf_counter()
        times.append(now - t)
        t = now
        if len(times) >= steps:
            break
    return times


def run_animegan(data: Path, batch: int, steps: int, device: torch.device, compile_models: bool = False,
                 tiny: bool = False):
    """The README's real-data default (`animegan-train dataset=folder dataset.root=DATA`) at
    `batch`, its objects built by the functions run_training uses (R1 every 4 steps and the
    EMA included): a change there changes what is timed here."""
    from animegan.compose import compose_config, resolve_config
    from animegan.data import build_image_bank
    from animegan.distributed import ProcessGroup, Ranks
    from animegan.malloc_tuning import keep_freed_memory
    from animegan.resume import data_order
    from animegan.run import build_training, speed_settings
    from animegan.step import gan_step

    overrides = ["dataset=folder", f"dataset.root={data}", f"dataset.cache_dir={data}-cache", "dataset.dedupe=false",
                 f"batch_size={batch}", f"device={device.type}",
                 *(["train.compile=true", "loss.r1_gamma=0"] if compile_models else []),  # compile cannot do R1
                 *(["model.ngf=8", "model.ndf=8", "train.ema_calibration_images=64"] if tiny else [])]
    conf = resolve_config(compose_config(overrides), overrides, os.getcwd())
    # Decoded once into the preparation cache (not timed), as a training run does.
    bank = build_image_bank(conf.dataset, conf.model.image_size, conf.seed, progress=False)
    precision, channels_last = speed_settings(conf, device)
    if device.type == "cpu" and conf.train.keep_freed_memory:  # as run_training does
        keep_freed_memory()
    state, parts = build_training(conf, device, precision, channels_last, data_order(conf, None),
                                  bank.batches_per_epoch(batch), ProcessGroup(Ranks()))
    bank.to(device)
    if compile_models:  # as run_training does with train.compile=true; compiling happens in the warm-up steps
        state.generator.compile()
        state.discriminator.compile()
    rng = parts.rng
    per_epoch = bank.batches_per_epoch(batch)
    stamps, pending, step = [(time.perf_counter(), 0)], [], 0
    while step < steps:  # whole epochs of batches, as the loop serves them
        order = bank.epoch_order(0, step // per_epoch)
        for b in range(per_epoch):
            pending.append(gan_step(parts, bank.batch(order[b * batch:(b + 1) * batch], rng, channels_last), step))
            step += 1
            if len(pending) == 3:  # the loop's host read (every log_every steps): the device work is done
                torch.stack(pending).cpu()
                stamps.append((time.perf_counter(), len(pending)))
                pending = []
            if step >= steps:
                break
    per_step = [(t1 - t0) / n for (t0, _), (t1, n) in zip(stamps, stamps[1:]) for _ in range(n)]
    return per_step[:steps], {
        "precision": precision, "channels_last": channels_last, "compile": compile_models,
        "r1": conf.loss.r1_gamma > 0, "ema": conf.train.ema}


def child(args) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    steps = args.warmup + args.steps
    if args.variant == "baseline":
        times, extra = run_baseline(Path(args.data), args.batch, steps, device), {}
    else:
        times, extra = run_animegan(Path(args.data), args.batch, steps, device, args.variant == "compiled", args.tiny)
    timed = times[args.warmup:]
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # DataLoader workers
    print(json.dumps({"variant": args.variant, "step_s": statistics.median(timed), "peak_rss_mib": rss,
                      "worker_peak_rss_mib": children_rss, "peak_gpu_mib": peak_gpu, **extra}))


def make_jpeg_folder(root: Path, n: int) -> Path:
    """Synthetic faces saved as JPEGs in ImageFolder layout (one class folder)."""
    from PIL import Image

    from animegan.data.synthetic import render_faces

    folder = root / "faces" / "all"
    folder.mkdir(parents=True)
    images = render_faces(n, 96, seed=0)
    for i, im in enumerate(images):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f"{i}.jpg", quality=92)
    return root / "faces"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="folder of images in ImageFolder layout (default: synthetic faces as 96 px JPEGs)")
    p.add_argument("--n-images", type=int, default=2048, help="synthetic images to make when --data is not given")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=6, help="timed steps per child")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="alternations of baseline and animegan")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compiled", action="store_true",
                   help="also time animegan with torch.compile (train.compile=true); give --warmup enough steps to compile")
    p.add_argument("--tiny", action="store_true", help="animegan with tiny nets (ngf=ndf=8): checks the script runs")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        return child(args)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(make_jpeg_folder(Path(tmp), args.n_images))
        results = {"baseline": [], "animegan": [], **({"compiled": []} if args.compiled else {})}
        for _ in range(args.rounds):
            for variant in results:
                cmd = [sys.executable, __file__, "--variant", variant, "--data", data, "--batch", str(args.batch),
                       "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device,
                       *(["--tiny"] if args.tiny else [])]
                out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
                if out.returncode:
                    sys.exit(f"{variant} failed:\n{out.stderr}")
                results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"device {args.device} ({torch.get_num_threads()} threads), batch {args.batch}, DCGAN-64 ngf=ndf=64 nz=100, "
          f"{args.rounds} rounds x {args.steps} timed steps, torch {torch.__version__}")
    print(f"{'variant':10} {'images/s':>9} {'ms/step':>8} {'peak RSS MiB':>13} {'workers RSS':>12} {'GPU MiB':>8}  settings")
    speed = {}
    for variant, runs in results.items():
        step = statistics.median(r["step_s"] for r in runs)
        speed[variant] = args.batch / step
        r = runs[-1]
        gpu = f"{r['peak_gpu_mib']:.0f}" if r["peak_gpu_mib"] else "-"
        settings = f"{r.get('precision', 'fp32')}, channels_last={r.get('channels_last', False)}" \
            + (", R1 every 4 steps" if r.get("r1") else "") + (", EMA" if r.get("ema") else "") \
            + (", torch.compile" if r.get("compile") else "")
        print(f"{variant:10} {speed[variant]:9.1f} {step * 1000:8.0f} {max(x['peak_rss_mib'] for x in runs):13.0f} "
              f"{max(x['worker_peak_rss_mib'] for x in runs):12.0f} {gpu:>8}  {settings}")
    for variant in speed:
        if variant != "baseline":
            print(f"ratio {variant} / baseline: {speed[variant] / speed['baseline']:.2f}x")


if __name__ == "__main__":
    main()
