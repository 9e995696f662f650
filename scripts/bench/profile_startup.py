"""Where the time of a one-step `animegan-train` goes: imports, config, data, model build,
first step, checkpoint, grid, plot, TensorBoard, export. Prints one table (seconds).

    python scripts/bench/profile_startup.py                  # a cached 64-face folder, one step, full-width DCGAN-64
    python scripts/bench/profile_startup.py --ngf 8 --ndf 8  # the tests' tiny networks

Run it on an idle machine (`taskset -c 0 env OMP_NUM_THREADS=1 ...` for one core). The
command runs in this process under cProfile (a few % slower than without); each phase is
the cumulative time of the function named beside it, so phases that call each other
overlap. `import torch` is timed first, on its own. A second table compares whole
processes: `python -c "import torch"` against the same one-step command.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (phase, the function whose cumulative time it is): named as importable objects, resolved
# after the run (importing them first would distort the import timings), so a function that
# is renamed or moved stops this script with an ImportError/AttributeError instead of
# printing 0.00 for its phase.
PHASES = [
    ("config: compose, validate, resume plan", "animegan.plan:plan_run"),
    ("Hydra: run dir, .hydra record, logging", "hydra.core.utils:run_job"),
    ("data: cache check and load", "animegan.data:build_image_bank"),
    ("models, optimisers, EMA: build", "animegan.run:build_training"),
    ("training steps (the first one included)", "animegan.step:gan_step"),
    ("checkpoints: last.pt", "animegan.state:CheckpointFiles.save"),
    ("EMA BatchNorm statistics", "animegan.ema:calibrate"),
    ("sample grids", "animegan.artefacts:save_image_grid"),
    ("losses.png", "animegan.artefacts:plot_losses"),
    ("timelapse.gif", "animegan.gif:write_timelapse"),
    ("TensorBoard: writer", "animegan.logger:TensorBoard.__init__"),
    ("export: generator.pt", "animegan.state:CheckpointFiles.export"),
]


def profile_key(target: str) -> tuple:
    """cProfile's key (file, first line, name) of the function `module:qualified.name`."""
    import importlib
    import inspect

    module, _, qualname = target.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    code = inspect.unwrap(obj).__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def make_folder(root: Path, n: int = 64) -> Path:
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--logger", default="tensorboard", help="logger config group (tensorboard, csv, none)")
    p.add_argument("--repeats", type=int, default=3, help="whole-process timings: best of N")
    p.add_argument("--work", type=Path, help="folder for the faces and runs (default: a new temporary folder)")
    a = p.parse_args()

    work = a.work or Path(tempfile.mkdtemp(prefix="animegan-profile-"))
    faces = make_folder(work / "faces")
    # 64 faces at batch 64: one step
    argv = ["dataset=folder", f"dataset.root={faces}", f"dataset.cache_dir={work / 'cache'}", "dataset.workers=1",
            "batch_size=64", "epochs=1", f"model.ngf={a.ngf}", f"model.ndf={a.ndf}",
            f"logger={a.logger}", "device=cpu"]
    train = str(Path(sys.executable).parent / "animegan-train")
    subprocess.run([train, *argv, f"hydra.run.dir={work / 'warm'}"], check=True, capture_output=True)  # the cache

    started = time.perf_counter()
    import torch  # noqa: F401

    import_torch = time.perf_counter() - started
    started = time.perf_counter()
    from animegan.cli import train as train_cli  # noqa: E402

    import_cli = time.perf_counter() - started
    sys.argv = ["animegan-train", *argv, f"hydra.run.dir={work / 'profiled'}"]
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.runcall(train_cli.main)
    total = time.perf_counter() - started
    stats = pstats.Stats(profile).stats  # {(file, line, function): (calls, ncalls, tottime, cumtime, callers)}

    print(f"one-step animegan-train, in-process under cProfile; ngf {a.ngf}, ndf {a.ndf}, logger {a.logger}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"{'phase':<45} {'seconds':>8}")
    print(f"{'import torch':<45} {import_torch:8.2f}")
    print(f"{'import animegan.cli.train':<45} {import_cli:8.2f}")
    for label, target in PHASES:
        entry = stats.get(profile_key(target))  # None: the function did not run in this command
        print(f"{label:<45} {entry[3] if entry else 0.0:8.2f}")
    print(f"{'the whole command (main), profiled':<45} {total:8.2f}")
    print(f"torch._dynamo imported: {'torch._dynamo' in sys.modules}")

    def best(command) -> float:
        times = []
        for _ in range(a.repeats):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        return min(times)

    bare = best([sys.executable, "-c", "import torch"])
    one_step = best([train, *argv, f"hydra.run.dir={work / 'whole'}"])
    print(f"\nwhole processes, best of {a.repeats}:")
    label = 'python -c "import torch"'
    print(f"{label:<45} {bare:8.2f}")
    print(f"{'animegan-train, one step':<45} {one_step:8.2f}  (import torch + {one_step - bare:.2f})")


if __name__ == "__main__":
    main()
