"""The wheel works when installed into a fresh venv and run from another directory.

The fresh venv borrows torch & co. from the test environment through a .pth line (site
packages listed there are added to sys.path, but their .pth files, among them the editable
install of animegan, are not processed), so only the wheel provides animegan.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist", REPO], root)
    assert built.returncode == 0, built.stderr
    wheel = next((root / "dist").glob("animegan-*.whl"))
    venv = root / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv], root).returncode == 0
    site = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     root).stdout.strip())
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
                      "--no-index", wheel], root)
    assert installed.returncode == 0, installed.stderr
    return venv / "bin"


@pytest.mark.slow
def test_wheel_ships_the_configs_and_trains_and_samples_from_elsewhere(wheel_venv, tmp_path):
    where = _run([wheel_venv / "python", "-c", "import animegan, animegan.configs as c; print(animegan.__file__, c.__file__)"],
                 tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(REPO) not in where.stdout  # imported from the wheel, not from the checkout

    train = _run([wheel_venv / "animegan-train", "dataset.num_images=32", "model=dcgan32", "model.ngf=4", "model.ndf=4",
                  "batch_size=16", "epochs=1", "device=cpu", "output.n_samples=4"], tmp_path)
    assert train.returncode == 0, train.stdout + train.stderr
    run_dir = next((tmp_path / "outputs").glob("*/*"))  # Hydra's default outputs/<date>/<time>
    assert (run_dir / "samples" / "epoch_001.png").is_file() and (run_dir / "train.log").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]  # nothing else in the cwd

    sample = _run([wheel_venv / "animegan-sample", "--ckpt", run_dir / "checkpoints" / "generator.pt", "--n", "4",
                   "--out", tmp_path / "g.png"], tmp_path)
    assert sample.returncode == 0, sample.stderr
    assert (tmp_path / "g.png").is_file()


@pytest.mark.slow
def test_the_wheel_ships_afg_and_samples_it_by_name_from_anywhere(wheel_venv, tmp_path):
    found = _run([wheel_venv / "python", "-c", "from animegan.face_generator import resolve_checkpoint as r; print(r('afg.pt'))"],
                 tmp_path)
    assert found.returncode == 0, found.stderr
    assert "site-packages" in found.stdout and str(REPO) not in found.stdout  # the wheel's copy
    sample = _run([wheel_venv / "animegan-sample", "--ckpt", "afg.pt", "--n", "4", "--seed", "0"], tmp_path)
    assert sample.returncode == 0, sample.stderr
    assert (tmp_path / "outputs" / "samples" / "afg-n4-seed0.png").is_file()
