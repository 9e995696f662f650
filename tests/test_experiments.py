"""Every experiment file composes to its source's setup and trains a few steps (on tiny
synthetic data in place of the real dataset)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import animegan
from animegan.models import build_discriminator, build_generator, count_parameters
from animegan.run import run_training
from conftest import standin_eval, tiny_conf

EXPERIMENTS = Path(animegan.__file__).parent / "configs" / "experiment"
if not EXPERIMENTS.is_dir():  # editable install: the configs live at the repository root
    EXPERIMENTS = Path(__file__).parents[1] / "configs" / "experiment"
NAMES = ["oulu", "nyu", "afg", "gochiusa", "naruto", "recommended"]
REAL_DATA = ["oulu", "nyu", "afg", "gochiusa", "naruto"]  # tied to a dataset: FID is tracked
ON_SYNTHETIC = ["dataset=synthetic", "dataset.num_images=64"]


def compose(name: str, *overrides: str):
    """The experiment as a user gets it (real dataset, full size) without touching the data."""
    from animegan.cli.train import compose_config, resolve_config

    job = [f"experiment={name}", *overrides]
    return resolve_config(compose_config(job), job)


def test_every_experiment_file_is_listed_and_states_its_source():
    assert sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")) == sorted(NAMES)
    for name in NAMES:
        head = (EXPERIMENTS / f"{name}.yaml").read_text()
        assert "# @package _global_" in head and ("Source" in head or "Sources" in head), name


@pytest.mark.parametrize("name", NAMES)
def test_experiment_runs_a_few_steps(tmp_path, name):
    conf = tiny_conf(f"experiment={name}", *ON_SYNTHETIC, *standin_eval(tmp_path / "stats"))
    export = run_training(conf, tmp_path, show_progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 4 and export.is_file()
    assert (tmp_path / "checkpoints" / "best.pt").is_file() == (name in REAL_DATA)  # evaluated at the last epoch
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())


def test_real_data_experiments_track_fid_and_keep_the_best():
    for name in NAMES:
        c = compose(name)
        assert (c.eval.every_n_epochs > 0) == (name in REAL_DATA), name
        if name in REAL_DATA:
            assert c.eval.feature_extractor == "inception-v3-compat" and c.eval.n >= 5000, name


def test_oulu():
    c = compose("oulu")
    assert (c.dataset.name, c.epochs, c.batch_size, c.loss.name) == ("anime36k", 40, 128, "bce")
    assert c.optimizer.name == "adam" and c.optimizer.lr == 2e-4 and c.optimizer.betas == [0.5, 0.999]
    assert (c.model.image_size, c.model.ngf, c.model.ndf) == (64, 64, 64)


def test_nyu_updates_g_twice_per_d_step():
    c = compose("nyu")
    assert (c.train.g_steps, c.train.d_steps, c.loss.name, c.model.image_size) == (2, 1, "bce", 64)


def test_afg_exports_afg_pt(tmp_path):
    c = compose("afg")
    assert c.epochs == 33 and c.checkpoint.export == "afg.pt"
    run_training(tiny_conf("experiment=afg", *ON_SYNTHETIC, *standin_eval(tmp_path / "stats")), tmp_path,
                 show_progress=False)
    assert (tmp_path / "checkpoints" / "afg.pt").is_file()


def test_gochiusa_uses_latent_128_and_drops_small_images():
    c = compose("gochiusa")
    assert c.model.nz == 128 and c.dataset.name == "gochiusa" and c.dataset.min_size == 64
    assert build_generator(c.model)(torch.randn(2, 128)).shape == (2, 3, 64, 64)


def test_naruto_matches_the_source_parameter_counts_and_options():
    c = compose("naruto")
    assert c.dataset.name == "naruto" and c.model.image_size == 64 and c.loss.name == "bce"
    assert c.optimizer.lr == 1e-3 and c.optimizer.lr_g is None and c.optimizer.lr_d is None
    g, d = build_generator(c.model), build_discriminator(c.model)
    assert 3.8e6 <= count_parameters(g) <= 4.2e6, count_parameters(g)  # ~4M
    assert 0.36e6 <= count_parameters(d) <= 0.44e6, count_parameters(d)  # ~0.4M
    for net in (g, d):
        assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in net.modules())
        assert any(isinstance(m, torch.nn.LeakyReLU) for m in net.modules())
        assert not any(type(m) is torch.nn.ReLU for m in net.modules())


def test_recommended_is_bce_with_label_smoothing_and_ema():
    c = compose("recommended", "dataset=folder", "dataset.root=/somewhere")
    assert c.loss.name == "bce" and c.loss.real_label == 0.9 and c.train.ema
    assert c.dataset.root == "/somewhere"  # the recipe leaves the data to the user
