"""Chaos test of crash safety: train, kill -9 at random moments, resume, repeat; then check.

    python tests/harness/chaos.py --kills 24 --epochs 40 --out chaos-run   # kills survived, torn files, steps lost
    python tests/harness/chaos.py --kills 3 --out DIR --json            # what tests/test_chaos.py runs

1. An uninterrupted reference run of a small config (CPU, fixed seed, `--epochs` of 8 steps).
2. The same config, started with `resume=auto` into its own run directory and killed with
   SIGKILL `--kills` times, at points chosen by what the run has done, not by the clock:
   every other kill (the first, the third ...) lands in the middle of a checkpoint write
   (checkpoints are written every 2 steps and each write is held open for --write-delay
   seconds by ANIMEGAN_WRITE_DELAY, a test hook of animegan.files; the kill comes as soon
   as the write's temporary file appears), the others between writes, once the run has
   logged a few steps more than its last.pt holds (--seed varies how many). After each
   kill: every .pt file in the run must load (a "torn" file is one that does not), and
   last.pt must hold at most one checkpoint interval less than the steps the run had logged.
3. A last resume to the end. Its weights, optimizer states, EMA and metrics.csv must
   equal the reference run's, bit for bit.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

INTERVAL = 2  # checkpoint.every_n_steps
COMMON = ["dataset.num_images=256", "model.ngf=16", "model.ndf=16", "batch_size=32", "device=cpu",
          "train.log_every=1", f"checkpoint.every_n_steps={INTERVAL}", "checkpoint.keep_every=2",
          "checkpoint.snapshot_every=3", "output.n_samples=16", "output.nrow=4", "logger=csv",
          "train.ema_calibration_images=128"]


def train(args, run_dir: Path, env=None) -> subprocess.Popen:
    """Start a training; its console output goes to <run_dir>.log (a pipe nobody reads while
    it runs could fill up and stall it)."""
    command = [str(Path(sys.executable).parent / "animegan-train"), *COMMON, *args, f"hydra.run.dir={run_dir}"]
    with open(f"{run_dir}.log", "a") as log:
        return subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)


def failed(what: str, run_dir: Path) -> SystemExit:
    """The error to stop with: what failed, and the end of its console output."""
    output = Path(f"{run_dir}.log").read_text(errors="replace")[-2000:]
    return SystemExit(f"{what}; the end of its output ({run_dir}.log):\n{output}")


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return max((int(r["step"]) for r in csv.DictReader(f) if r.get("loss_D")), default=0)


def torn_files(run_dir: Path) -> list:
    from animegan.checkpoint import load_checkpoint
    from animegan.errors import AnimeganError

    torn = []
    for path in sorted(run_dir.rglob("*.pt")):
        try:
            load_checkpoint(path)
        except AnimeganError as exc:
            torn.append(f"{path.name}: {exc}")
    return torn


def same_training(a: Path, b: Path) -> bool:
    from animegan.checkpoint import load_checkpoint

    sa, sb = load_checkpoint(a / "checkpoints" / "last.pt"), load_checkpoint(b / "checkpoints" / "last.pt")

    def tensors(tree, prefix=""):
        if isinstance(tree, dict):
            return {k: v for key, sub in tree.items() for k, v in tensors(sub, f"{prefix}{key}.").items()}
        if isinstance(tree, (list, tuple)):
            return {k: v for i, sub in enumerate(tree) for k, v in tensors(sub, f"{prefix}{i}.").items()}
        return {prefix: tree} if isinstance(tree, torch.Tensor) else {}

    nets = ("generator", "discriminator", "opt_g", "opt_d", "generator_ema")
    ta, tb = tensors({k: sa.get(k) for k in nets}), tensors({k: sb.get(k) for k in nets})
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta) and sa["step"] == sb["step"] \
        and (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--out", type=Path, required=True, help="folder for the two runs (emptied first)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill points between writes")
    p.add_argument("--write-delay", type=float, default=0.3, help="seconds each checkpoint write is slowed down")
    p.add_argument("--epochs", type=int, default=6, help="epochs of 8 steps each (more for more kills)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    a = p.parse_args()
    import shutil

    shutil.rmtree(a.out, ignore_errors=True)
    reference, chaos = a.out / "reference", a.out / "chaos"
    started = time.perf_counter()
    epochs = [f"epochs={a.epochs}"]
    a.out.mkdir(parents=True)
    if train(epochs, reference).wait() != 0:
        raise failed("the reference run failed", reference)
    duration = time.perf_counter() - started

    rng = random.Random(a.seed)
    report = {"kills": 0, "kills_during_a_checkpoint_write": 0, "torn_files": [], "max_steps_lost": 0,
              "interval": INTERVAL, "went_back_further": [], "finished_early": 0}
    last_step = 0
    env = {"ANIMEGAN_WRITE_DELAY": str(a.write_delay)}
    for kill in range(a.kills):
        proc = train([*epochs, "resume=auto"], chaos, env)
        deadline = time.perf_counter() + max(60.0, duration * 3)  # a run that stalls fails, it does not hang
        in_write = kill % 2 == 0
        target = last_step + rng.randint(1, INTERVAL + 1)  # between writes: this many steps past last.pt
        while proc.poll() is None and time.perf_counter() < deadline:
            writing = any(chaos.rglob(f".*.tmp-{proc.pid}"))
            if writing if in_write else (logged_steps(chaos) >= target and not writing):
                break
            time.sleep(0.005)
        if proc.poll() is not None:  # it reached the end before the kill point
            report["finished_early"] += 1
            if proc.returncode != 0:
                raise failed("a resumed run failed", chaos)
            break
        if time.perf_counter() >= deadline:
            proc.kill()
            raise failed(f"kill {kill + 1}: the run never reached its kill point", chaos)
        writing = any(chaos.rglob(f".*.tmp-{proc.pid}"))  # this process's unfinished write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        report["kills"] += 1
        report["kills_during_a_checkpoint_write"] += int(writing)
        report["torn_files"] += torn_files(chaos)
        from animegan.checkpoint import load_checkpoint

        last = chaos / "checkpoints" / "last.pt"
        step = load_checkpoint(last)["step"] if last.is_file() else 0
        lost = logged_steps(chaos) - step
        report["max_steps_lost"] = max(report["max_steps_lost"], lost)
        if lost > INTERVAL or step < last_step:
            report["went_back_further"].append({"logged": logged_steps(chaos), "last.pt": step, "before": last_step})
        last_step = step
    final = train([*epochs, "resume=auto"], chaos)
    if final.wait() != 0:
        raise failed("the final resume failed", chaos)
    report["final_equals_uninterrupted"] = same_training(reference, chaos)
    report["torn_files"] += torn_files(chaos)
    report["ok"] = report["final_equals_uninterrupted"] and not report["torn_files"] and not report["went_back_further"]
    if a.json:
        print(json.dumps(report))
    else:
        print(f"kills survived: {report['kills']} ({report['kills_during_a_checkpoint_write']} during a checkpoint "
              f"write); torn files: {len(report['torn_files'])}; steps lost per kill: at most "
              f"{report['max_steps_lost']} (checkpoint interval {INTERVAL}); final weights equal an uninterrupted "
              f"run's: {'yes' if report['final_equals_uninterrupted'] else 'NO'}")
    raise SystemExit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
