"""Shared helpers: compose shrunken configs with Hydra's compose API and run on CPU in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch

from animegan.compose import compose_config, resolve_config

# One thread per process, also in the commands the tests start: the models are tiny, and
# the suite runs one test process per core (pytest-xdist), so more threads only compete.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)  # and in this process, once: nothing the tests call changes it

# A run small enough for a test: 64 synthetic faces, tiny nets, 4 steps per epoch.
TINY = [
    "dataset.num_images=64", "model.ngf=8", "model.ndf=8", "batch_size=16", "epochs=1", "device=cpu",
    "train.log_every=2", "output.n_samples=16", "output.nrow=4",
    "train.ema_calibration_images=64",  # the averaged G's statistics at every checkpoint: 4 batches, not 64
]
BIN = Path(sys.executable).parent
_SLOW_TEST = {"marked": False}  # whether the running test carries the slow marker (run_cli checks it)


@pytest.fixture(autouse=True)
def _note_the_slow_marker(request):
    """`pytest -m "not slow"` is the inner loop: a test that starts a command must be marked
    slow, and run_cli refuses to start one for a test that is not."""
    _SLOW_TEST["marked"] = request.node.get_closest_marker("slow") is not None


def tiny_conf(*overrides: str, synthetic: bool = True):
    """A validated RunConfig: TINY plus `overrides` (later ones win). synthetic=False
    leaves out TINY's dataset keys (for a folder dataset the test makes)."""
    job = [*(TINY if synthetic else [a for a in TINY if not a.startswith("dataset.")]), *overrides]
    return resolve_config(compose_config(job), job, os.getcwd())


def face_picture(seed: int, size: int = 40):
    """A distinct picture per seed: 8x8 random colour blocks scaled up (distinct bytes and
    distinct perceptual hashes, so dedupe and near_dedupe keep every one)."""
    import numpy as np
    from PIL import Image

    blocks = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((size, size), Image.Resampling.NEAREST)


def image_folder(root: Path, n: int = 6, start: int = 0, size: int = 40, name: str = "img{:03d}.png") -> Path:
    """The tests' folder of images: pictures `start` .. `start + n - 1` (face_picture), saved
    as `name.format(index)`; the same index is the same picture in every folder, so a test
    can add, change or remove images of a folder it made."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        face_picture(i, size).save(root / name.format(i))
    return root


def config_value(conf, dotted: str):
    """conf's value at a dotted key ("optimizer.betas"); lists as plain lists."""
    for part in dotted.split("."):
        conf = getattr(conf, part)
    return list(conf) if hasattr(conf, "__len__") and not isinstance(conf, str) else conf


def run_cli(command: str, args: List[str], cwd: Path, timeout: float = 300, check: bool = False, env=None):
    """Run an installed console script; return the CompletedProcess (text output)."""
    assert _SLOW_TEST["marked"], "a test that starts a process is slow: mark it @pytest.mark.slow"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0", **(env or {}))
    result = subprocess.run([str(BIN / command), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} {args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def call_cli(main, args: List[str], cwd: Path = None) -> subprocess.CompletedProcess:
    """Call a command's main(argv) in this process, as its console script would (in `cwd`);
    its exit status and console output, as run_cli returns them. For the many error cases
    of one command: a process each would pay torch's import for every case."""
    import contextlib
    import io
    import logging

    out, err = io.StringIO(), io.StringIO()
    status, before, raise_exceptions = 0, os.getcwd(), logging.raiseExceptions  # animegan-train sets it
    try:
        os.chdir(cwd or before)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:  # as the interpreter ends: None is 0, a message goes to stderr with status 1
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        if exc.code is not None and not isinstance(exc.code, int):
            err.write(f"{exc.code}\n")
    finally:
        os.chdir(before)
        logging.raiseExceptions = raise_exceptions
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def shared_folder(tmp_path_factory, name: str, make) -> Path:
    """A folder that `make(folder)` fills once per test session, however many test
    processes (pytest-xdist workers) ask for it: the first makes it while the others wait
    on its lock (xdist's recipe for session-wide fixtures). For runs several tests read."""
    from filelock import FileLock  # a dependency of torch

    root = tmp_path_factory.getbasetemp().parent  # the session's, shared by its workers
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            make(folder)
            done.touch()
    return folder


STANDIN = "animegan-test-pixel-stats"  # stand-in FID feature extractor (no weights to download)


def register_standin_extractor():
    """Register (once) a tiny torch-fidelity feature extractor: 4x4 average-pooled RGB,
    48 numbers per image; cheap, deterministic, sensitive to colour and layout."""
    import torch.nn.functional as F
    from torch_fidelity import FeatureExtractorBase, register_feature_extractor
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    class PixelStats(FeatureExtractorBase):
        calls = 0  # images seen, to tell computed from cached features

        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)

        @staticmethod
        def get_provided_features_list():
            return ("pooled",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "pooled"

        @staticmethod
        def can_be_compiled():
            return False

        def forward(self, x):
            assert x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3
            type(self).calls += len(x)
            return (F.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1),)

    if STANDIN not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(STANDIN, PixelStats)
    return FEATURE_EXTRACTORS_REGISTRY[STANDIN]


def standin_eval(stats_dir: Path) -> List[str]:
    """Overrides that make a run's FID evaluation cheap and offline."""
    register_standin_extractor()
    return [f"eval.feature_extractor={STANDIN}", f"eval.stats_dir={stats_dir}", "eval.n=32",
            "eval.kid_subset_size=16", "eval.kid_subsets=5"]


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def run_steps(parts, images: torch.Tensor, batch_size: int, channels_last: bool = False, flip: bool = True):
    """One epoch of GAN steps over `images` (uint8 [N, 3, S, S]) with the given StepParts,
    as the loop feeds them; the metrics of every step, stacked."""
    from animegan.data import ImageBank
    from animegan.step import gan_step

    bank = ImageBank(images, flip=flip)
    order = bank.epoch_order(0, 0)
    return torch.stack([gan_step(parts, bank.batch(order[b * batch_size:(b + 1) * batch_size], parts.rng, channels_last), b)
                        for b in range(bank.batches_per_epoch(batch_size))])
