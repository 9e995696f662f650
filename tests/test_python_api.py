"""The public Python API (animegan.load_generator, animegan.train), the torch.hub entries
and the example in docs/: the same faces as the commands, one-line errors, a second run in
the same process unaffected by the first."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import animegan
from animegan.cli import sample as sample_cli
from animegan.errors import AnimeganError
from conftest import TINY, call_cli

REPO = Path(__file__).parents[1]


def test_load_generator_draws_the_faces_animegan_sample_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: afg.pt is found among the installed generators
    assert call_cli(sample_cli.main, ["--ckpt", "afg.pt", "--n", "4", "--seed", "0", "--out", "cli.png"],
                    tmp_path).returncode == 0
    faces = animegan.load_generator("afg.pt", device="cpu")
    sample = faces.sample(4, seed=0)
    assert sample.dtype == torch.uint8 and sample.shape == (4, 3, 64, 64)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cli.png").convert("RGB")), np.asarray(faces.grid(sample)))
    assert np.array_equal(np.asarray(faces.sample_images(4, seed=0)[3]), sample[3].permute(1, 2, 0).numpy())
    assert not torch.equal(faces.sample(4, seed=1), sample)
    assert not torch.equal(faces.sample(4), faces.sample(4))  # seed=None: new faces every call


def test_interpolate_and_grid_match_the_cli_walk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert call_cli(sample_cli.main, ["--ckpt", "afg.pt", "--interpolate", "3", "--n", "2", "--seed", "5", "--out",
                                      "walk.png"], tmp_path).returncode == 0
    faces = animegan.load_generator("afg.pt", device="cpu")
    walk = faces.interpolate(keys=2, steps=3, seed=5)
    assert walk.shape == (2, 4, 3, 64, 64) and torch.equal(walk[0, -1], walk[1, 0])  # row i ends where i + 1 starts
    grid = faces.grid(walk)
    assert grid.size == (4 * 66 + 2, 2 * 66 + 2)  # a row per transition
    assert np.array_equal(np.asarray(Image.open(tmp_path / "walk.png").convert("RGB")), np.asarray(grid))


def _faces_digest(faces) -> str:
    return hashlib.sha256(faces.sample(4, seed=0).numpy().tobytes()).hexdigest()


@pytest.mark.slow
def test_torch_hub_loads_the_shipped_generator_in_a_fresh_process(tmp_path):
    code = ("import hashlib, torch; faces = torch.hub.load(%r, 'afg', source='local', device='cpu'); "
            "print(type(faces).__name__, hashlib.sha256(faces.sample(4, seed=0).numpy().tobytes()).hexdigest())"
            % str(REPO))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["FaceGenerator", _faces_digest(animegan.load_generator("afg.pt", "cpu"))]


def test_torch_hub_builds_an_untrained_dcgan_from_a_model_config():
    hub = torch.hub.load(str(REPO), "dcgan", source="local", ngf=16, device="cpu")
    again = torch.hub.load(str(REPO), "dcgan", source="local", ngf=16, device="cpu")
    assert hub.config["ngf"] == 16 and hub.image_size == 64 and hub.source == Path("untrained")
    assert _faces_digest(hub) == _faces_digest(again)  # seeded: the same weights
    untrained = torch.hub.load(str(REPO), "afg", source="local", pretrained=False, device="cpu")
    assert untrained.config == animegan.load_generator("afg.pt", "cpu").config
    with pytest.raises(AnimeganError, match="unknown model config 'dcgan63'; available: dcgan128, dcgan32, dcgan64"):
        torch.hub.load(str(REPO), "dcgan", source="local", config="dcgan63")


@pytest.mark.slow
def test_train_twice_in_one_process_gives_two_equal_independent_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handlers = list(logging.getLogger("animegan").handlers)
    first = animegan.train(TINY, show_progress=False)
    second = animegan.train(TINY, show_progress=False)  # the same second: its own directory all the same
    assert first.run_dir != second.run_dir and first.run_dir.parent == tmp_path / "outputs" / first.run_dir.parent.name
    for result in (first, second):
        assert result.reason.value == "finished" and result.step == 4 and result.export.is_file()
        assert result.export == result.run_dir / "checkpoints" / "generator.pt"
        assert (result.run_dir / ".hydra" / "config.yaml").is_file() and not (result.run_dir / ".animegan.lock").exists()
    log_lines = (first.run_dir / "train.log").read_text().splitlines()
    assert len(log_lines) == len((second.run_dir / "train.log").read_text().splitlines())  # nothing of run 2 in run 1's log
    assert logging.getLogger("animegan").handlers == handlers
    from hydra.core.global_hydra import GlobalHydra

    assert not GlobalHydra.instance().is_initialized()
    a, b = (animegan.load_generator(r.export, "cpu") for r in (first, second))
    assert _faces_digest(a) == _faces_digest(b)  # the same seeds: no random state carried from run 1 to run 2


@pytest.mark.slow
def test_train_takes_its_configs_from_config_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "quick.yaml").write_text("# @package _global_\nepochs: 2\n")
    result = animegan.train([*[a for a in TINY if not a.startswith("epochs=")], "experiment=quick", f"hydra.run.dir={tmp_path / 'run'}"],
                            config_dir=tmp_path / "mine", show_progress=False)
    assert result.step == 8 and result.run_dir == tmp_path / "run"


@pytest.mark.parametrize("call, message", [
    (lambda: animegan.load_generator("no-such.pt"), "checkpoint not found: no-such.pt"),
    (lambda: animegan.load_generator(""), "load_generator needs a checkpoint path or name"),
    (lambda: animegan.load_generator("afg.pt", device="tpu"), "device"),
    (lambda: animegan.load_generator("afg.pt", "cpu").sample(0), "the number of faces must be an integer from 1"),
    (lambda: animegan.load_generator("afg.pt", "cpu").sample(4, seed=-1), "seed must be None or an integer"),
    (lambda: animegan.load_generator("afg.pt", "cpu").sample(4, truncation=0.01), "truncation must be None or a"),
    (lambda: animegan.load_generator("afg.pt", "cpu").interpolate(keys=1), "interpolate needs keys >= 2"),
    (lambda: animegan.load_generator("afg.pt", "cpu").grid("many"), "grid needs a number of faces"),
    (lambda: animegan.load_generator("afg.pt", "cpu").grid(2000), "from 1 to 1024"),
    (lambda: animegan.train("epochs=1"), "overrides must be a list of strings"),
    (lambda: animegan.train(["-m", "epochs=1,2"]), "sweeps (-m) and Hydra's flags belong to the animegan-train"),
    (lambda: animegan.train(["epochs=many"]), "epochs"),
    (lambda: animegan.train(["model=dcgan65"]), "unknown model 'dcgan65'"),
    (lambda: animegan.train([], config_dir="no/such/folder"), "config_dir no/such/folder is not a folder"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments_raise_the_one_line_error(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AnimeganError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "outputs").exists()  # refused before anything was written


def test_every_public_name_is_documented():
    assert sorted(animegan.__all__) == sorted(set(animegan.__all__))
    for name in animegan.__all__:
        value = getattr(animegan, name)
        if name != "__version__":
            assert inspect.getdoc(value), name
    for name, member in inspect.getmembers(animegan.FaceGenerator):
        if not name.startswith("_"):
            assert inspect.getdoc(member), f"FaceGenerator.{name}"


@pytest.mark.slow
def test_import_animegan_is_light():
    code = "import sys, animegan; animegan.FaceGenerator; print('torch' in sys.modules, 'hydra' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.mark.slow
def test_the_example_in_docs_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("from_python", REPO / "docs" / "from_python.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(train_overrides=[*TINY], out=tmp_path / "example")
    assert result.step == 4 and result.run_dir == tmp_path / "example" / "run"
    sizes = {name: Image.open(tmp_path / "example" / name).size for name in ("afg_grid.png", "afg_walk.png",
                                                                             "my_faces.png")}
    assert sizes["afg_walk.png"] == (9 * 66 + 2, 4 * 66 + 2) and sizes["my_faces.png"] == (4 * 66 + 2, 4 * 66 + 2)
    assert min(sizes["afg_grid.png"]) > 400  # the matplotlib figure of the 8 x 8 grid


def test_train_into_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(AnimeganError, match="cannot write the run directory .*a_file is not a folder"):
        animegan.train([*TINY, f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"])
