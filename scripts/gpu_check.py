"""Every CUDA path of animegan, checked by one command: what to run when a GPU is lent.

    bash scripts/gpu_check.sh                     # on the GPU machine: wheels, then this script
    python scripts/gpu_check.py --device cpu --tiny --out /tmp/check   # the same checks, tiny, on a CPU

Each check runs in its own process with its own time limit, in order of importance, so
that a hang costs only its own budget. It writes `gpu_check.md` (a dated table, device
named, ready for docs/benchmarks.md) and the grids it made into --out, and exits 1
naming every check that failed.

Budget on one H100 (seconds; the sum leaves room under one 8-minute call):
  environment 5 | 6 precision/layout runs of 300 steps at batch 32 (~10 s each at
  2-3k img/s, plus ~8 s start-up) 120 | kill -9 and resume 45 | compile 90 |
  torchrun (NCCL) 45 | benchmark at batch 128 and 32 60 | sample afg.pt 15  = ~380 s.
The CPU timings of the same runs (a 2.6 GHz core with bf16: 60-150 img/s) and the
H100's ~30x throughput on DCGAN-64 give those figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.ngf=8", "model.ndf=8", "train.ema_calibration_images=64", "output.n_samples=16"]


def make_faces(folder: Path, n: int) -> Path:
    """n synthetic faces saved as 96 px JPEG files: the real-data path without real data."""
    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    from benchmark import make_jpeg_folder  # the benchmark's own folder of faces

    return make_jpeg_folder(folder, n)


def train_args(args, faces: Path, run: Path, *extra: str):
    base = ["dataset=folder", f"dataset.root={faces}", "dataset.workers=1", f"device={args.device}", f"hydra.run.dir={run}",
            "train.max_minutes=0", "checkpoint.snapshot_every=0", "logger=csv"]
    return [*base, *(TINY if args.tiny else []), f"epochs={args.epochs}", *extra]


def run(cmd, timeout: float, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def trained(log: str) -> str:
    m = re.search(r"trained (\d+) steps in ([\d.]+)s \((\d+) images/s\)", log)
    return f"{m.group(1)} steps, {m.group(3)} img/s" if m else "no 'trained' line"


# ------------------------------------------------------------------ checks (each returns its result text)

def check_environment(args, work: Path) -> str:
    smi = run(["nvidia-smi", "-L"], 10).stdout.strip() if shutil.which("nvidia-smi") else "no nvidia-smi"
    info = run([sys.executable, "-c", "import torch, json; c = torch.cuda.is_available(); print(json.dumps({"
                "'torch': torch.__version__, 'cuda': torch.version.cuda, 'available': c, 'name': "
                "torch.cuda.get_device_name() if c else 'cpu', 'memory_gib': round(torch.cuda.get_device_properties(0)"
                ".total_memory / 2**30, 1) if c else None}))"], 60)
    if info.returncode:
        raise RuntimeError(info.stderr.strip().splitlines()[-1])
    env = json.loads(info.stdout)
    if args.device.startswith("cuda") and not env["available"]:
        raise RuntimeError("PyTorch sees no CUDA GPU here (--device cpu checks the CPU paths)")
    return f"{smi.splitlines()[0] if smi else ''}; torch {env['torch']}, CUDA {env['cuda']}, {env['name']}, " \
           f"{env['memory_gib']} GiB"


def check_training(args, work: Path, precision: str, channels_last: str) -> str:
    """A real-data default run: its speed, peak memory, finite losses, an export that samples
    on the device and on the CPU."""
    run_dir = work / f"train-{precision}-{channels_last}"
    child = run([sys.executable, __file__, "--child-train", json.dumps(train_args(
        args, work / "faces", run_dir, f"train.precision={precision}", f"train.channels_last={channels_last}")),
        "--device", args.device], args.limit)
    if child.returncode:
        raise RuntimeError((child.stderr.strip() or child.stdout.strip()).splitlines()[-1])
    r = json.loads(child.stdout.strip().splitlines()[-1])
    shutil.copy(r["grid"], args.out / f"grid-{precision}-{channels_last}.png")
    places = f"{args.device} and cpu" if args.device != "cpu" else "cpu"
    return f"{r['steps']} steps, {r['img_s']:.0f} img/s, peak {r['peak_mib']:.0f} MiB, losses finite, " \
           f"the export samples on {places}"


def child_train(overrides, device: str) -> None:
    """(in its own process) train, then check what the run left."""
    import math

    import torch

    import animegan

    result = animegan.train(overrides, show_progress=False)
    assert result.final and all(math.isfinite(v) for v in result.final.values()), f"losses {result.final}"
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
    for where in [device, "cpu"] if device != "cpu" else ["cpu"]:  # the CPU last: its faces make the grid
        faces = animegan.load_generator(result.export, device=where)
        images = faces.sample(16, seed=0)
        assert images.shape[0] == 16 and images.float().std() > 5, f"blank faces on {where}"
    grid = result.run_dir / "check-grid.png"
    faces.grid(images, 4).save(grid)
    log = (result.run_dir / "train.log").read_text()
    rate = float(re.findall(r"\((\d+) images/s\)", log)[-1])
    print(json.dumps({"steps": result.step, "img_s": rate, "peak_mib": peak, "grid": str(grid)}))


def check_kill_and_resume(args, work: Path) -> str:
    """kill -9 in the middle of a run, `resume=auto` with the same command: the weights after the
    remaining steps against those of a run that was never interrupted."""
    straight, killed = work / "straight", work / "killed"
    common = ["checkpoint.every_n_steps=1", "output.sample_every=0", "train.log_every=1"]
    cli = [sys.executable, "-m", "animegan"]
    done = run([*cli, *train_args(args, work / "faces", straight, *common)], args.limit)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    again = [*cli, *train_args(args, work / "faces", killed, *common, "resume=auto")]
    proc = subprocess.Popen(again, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + args.limit / 2
    while time.time() < deadline and proc.poll() is None and not (last.exists() and _step(last) >= 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at = _step(last)
    resumed = run(again, args.limit)
    if resumed.returncode:
        raise RuntimeError(resumed.stderr.strip().splitlines()[-1])
    diff = _max_difference(straight / "checkpoints" / "last.pt", last)
    if diff != 0.0:
        raise RuntimeError(f"killed at step {at}; after the resume the weights differ by up to {diff:.3g}")
    return f"killed at step {at}, resumed to step {_step(last)}: weights bit-identical to the straight run"


def _step(path: Path) -> int:
    import torch

    try:
        return int(torch.load(path, weights_only=True, map_location="cpu")["step"])
    except Exception:  # being replaced right now
        return -1


def _max_difference(a: Path, b: Path) -> float:
    import torch

    sa, sb = (torch.load(p, weights_only=True, map_location="cpu") for p in (a, b))
    return max((sa[n][k].float() - sb[n][k].float()).abs().max().item() for n in ("generator", "discriminator")
               for k in sa[n] if sa[n][k].is_floating_point())


def check_compile(args, work: Path) -> str:
    done = run([sys.executable, "-m", "animegan", *train_args(args, work / "faces", work / "compiled",
                                                             "train.compile=true", "output.sample_every=0",
                                                             "loss.r1_gamma=0")], args.limit)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    compiling = re.findall(r"done in ([\d.]+)s", done.stdout)
    return f"without R1 (torch.compile cannot differentiate twice): {trained(done.stdout)}; epoch 1 (compiling " \
           f"included) {compiling[0] if compiling else '?'} s"


def check_torchrun(args, work: Path) -> str:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    nproc = max(1, __import__("torch").cuda.device_count()) if args.device.startswith("cuda") else 1
    done = run([*cmd, "--standalone", f"--nproc_per_node={min(nproc, 2)}", "-m", "animegan",
                *train_args(args, work / "faces", work / "torchrun", "output.sample_every=0")], args.limit)
    if done.returncode:
        raise RuntimeError((done.stderr.strip() or done.stdout.strip()).splitlines()[-1])
    backend = "NCCL" if args.device.startswith("cuda") else "gloo"
    return f"{min(nproc, 2)} process(es), {backend}: {trained(done.stdout)}"


def check_benchmark(args, work: Path) -> str:
    rows = []
    for batch in (128, 32):
        done = run([sys.executable, str(ROOT / "scripts" / "bench" / "benchmark.py"), "--device", args.device,
                    "--batch", str(batch), "--rounds", "1",
                    *(["--tiny", "--n-images", "128", "--steps", "2", "--warmup", "1"] if args.tiny else [])],
                   args.limit)
        if done.returncode:
            raise RuntimeError(done.stderr.strip().splitlines()[-1])
        rows.append(f"batch {batch}: " + " / ".join(ln.strip() for ln in done.stdout.splitlines()
                                                      if "img/s" in ln or "ratio" in ln.lower())[:300])
    return "; ".join(rows)


def check_sample(args, work: Path) -> str:
    started = time.perf_counter()
    done = run([sys.executable, "-c", "import sys; from animegan.cli.sample import main; main(sys.argv[1:])",
                "--ckpt", "afg.pt", "--n", "64", "--device", args.device, "--out", str(args.out / "afg-64.png")],
               args.limit)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return f"64 faces in {time.perf_counter() - started:.1f}s (whole process; {done.stdout.strip()})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny nets and few steps: checks the checks (CI, CPU)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check")))
    p.add_argument("--epochs", type=int, default=None, help="epochs of each run (default: 300 steps; --tiny: 8)")
    p.add_argument("--limit", type=float, default=None, help="seconds per check (default 150; --tiny 240)")
    p.add_argument("--child-train", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_train:
        return child_train(json.loads(args.child_train), args.device)
    args.limit = args.limit or (240 if args.tiny else 150)
    n_faces = 64 if args.tiny else 9600  # 300 steps of 32 per epoch
    args.epochs = args.epochs or (2 if args.tiny else 1)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    checks = [("environment", check_environment)]
    for precision in ("fp32", "bf16", "fp16"):
        for cl in ("true", "false"):
            checks.append((f"train {precision}, channels_last {cl}",
                           lambda a, w, p_=precision, c_=cl: check_training(a, w, p_, c_)))
    checks += [("kill -9, resume=auto", check_kill_and_resume), ("train.compile=true", check_compile),
               ("torchrun", check_torchrun), ("benchmark vs the classic example", check_benchmark),
               ("animegan-sample afg.pt --n 64", check_sample)]
    rows, failed = [], []
    for name, check in checks:
        started = time.perf_counter()
        if failed and failed[0] == "environment":  # no usable device: nothing else can run
            rows.append(f"| {name} | skipped | 0 | the environment check failed |")
            continue
        try:
            if name != "environment" and not (work / "faces").exists():
                make_faces(work, n_faces)
            status, result = "ok", check(args, work)
        except subprocess.TimeoutExpired:
            status, result = "FAILED", f"over its {args.limit:.0f} s limit"
        except Exception as exc:  # each check reports; the next one still runs
            status, result = "FAILED", f"{type(exc).__name__}: {exc}"
        if status != "ok":
            failed.append(name)
        rows.append(f"| {name} | {status} | {time.perf_counter() - started:.0f} | {result.replace('|', '/')} |")
        print(rows[-1], flush=True)
    table = "\n".join([f"# gpu_check, {time.strftime('%Y-%m-%d %H:%M')}, --device {args.device}"
                       f"{' --tiny' if args.tiny else ''}", "", "| check | status | seconds | result |",
                       "|---|---|---|---|", *rows, ""])
    (args.out / "gpu_check.md").write_text(table)
    shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"gpu_check: failed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
