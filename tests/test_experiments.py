"""Every experiment trains a few steps on a small folder of images made here (its own
dataset preset, pointed at that folder), and each does what its source project did: the
update ratio, the network sizes, the data cleaning, the export, the stabilisers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import animegan
from animegan.data import build_image_bank
from animegan.losses import build_loss
from animegan.models import build_discriminator, build_generator, count_parameters
from animegan.optimizers import build_optimizers
from animegan.launch import train_config
from animegan.face_generator import load_generator
from conftest import config_value, image_folder, standin_eval, tiny_conf

EXPERIMENTS = Path(animegan.__file__).parent / "configs" / "experiment"
if not EXPERIMENTS.is_dir():  # editable install: the configs live at the repository root
    EXPERIMENTS = Path(__file__).parents[1] / "configs" / "experiment"
NAMES = ["oulu", "nyu", "afg", "gochiusa", "naruto", "paper"]
REAL_DATA = ["oulu", "nyu", "afg", "gochiusa", "naruto"]  # tied to a dataset: FID is tracked


def compose(name: str, *overrides: str):
    """The experiment as a user gets it (real dataset, full size) without touching the data."""
    from animegan.compose import compose_config, resolve_config

    job = [f"experiment={name}", *overrides]
    return resolve_config(compose_config(job), job, os.getcwd())


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """64 noise 'faces' of 72 px (above every preset's min_size) and 8 small ones of 40 px."""
    root = image_folder(tmp_path_factory.mktemp("faces"), 64, size=72, name="face{:03d}.png")
    return image_folder(root, 8, start=64, size=40, name="small{}.png")


def run_experiment(name: str, run_dir: Path, faces: Path, *overrides: str):
    data = [f"dataset.root={faces}", f"dataset.cache_dir={run_dir.parent / 'cache'}"] if name in REAL_DATA else []
    conf = tiny_conf(f"experiment={name}", *data, *standin_eval(run_dir.parent / "stats"), *overrides,
                     synthetic=name not in REAL_DATA and "dataset=folder" not in overrides)
    export = train_config(conf, run_dir, show_progress=False).export
    return conf, export, torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def test_every_experiment_file_is_listed_and_states_its_source():
    assert sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")) == sorted(NAMES)
    for name in NAMES:
        head = (EXPERIMENTS / f"{name}.yaml").read_text()
        assert "# @package _global_" in head and ("Source" in head or "Sources" in head), name


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_experiment_trains_on_its_dataset_and_tracks_fid_where_it_has_data(tmp_path, faces, name):
    conf, export, state = run_experiment(name, tmp_path / "run", faces)
    assert state["step"] >= 2 and export.is_file()
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())
    # Real-data experiments evaluate FID (here at the last epoch) and keep the best state.
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file() == (name in REAL_DATA)
    if name in REAL_DATA:
        assert compose(name).eval.feature_extractor == "inception-v3-compat"


@pytest.mark.slow
def test_nyu_updates_g_twice_per_d_update(tmp_path, faces):
    _, _, state = run_experiment("nyu", tmp_path / "run", faces)
    steps = {net: int(next(iter(state[net]["state"].values()))["step"]) for net in ("opt_g", "opt_d")}
    assert steps["opt_g"] == 2 * steps["opt_d"] == 2 * state["step"]


@pytest.mark.slow
def test_oulu_trains_the_papers_dcgan_with_its_adam_settings(tmp_path, faces):
    c = compose("oulu")
    g, d = build_generator(c.model), build_discriminator(c.model)
    assert (count_parameters(g), count_parameters(d)) == (3_576_704, 2_765_568)  # DCGAN-64 at ngf = ndf = 64
    assert g(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    _, _, state = run_experiment("oulu", tmp_path / "run", faces)
    group = state["opt_d"]["param_groups"][0]
    assert (group["lr"], tuple(group["betas"])) == (2e-4, (0.5, 0.999)) and c.epochs == 40


@pytest.mark.slow
def test_afg_exports_afg_pt_that_sampling_loads(tmp_path, faces):
    _, export, _ = run_experiment("afg", tmp_path / "run", faces)
    assert export.name == "afg.pt"
    generator = load_generator(export, torch.device("cpu")).network
    assert generator(torch.randn(2, generator.nz)).shape == (2, 3, 64, 64)


def test_gochiusa_drops_small_images_and_uses_latent_128(tmp_path, faces):
    c = compose("gochiusa", f"dataset.root={faces}", f"dataset.cache_dir={tmp_path / 'cache'}")
    bank = build_image_bank(c.dataset, 64, seed=0, progress=False)
    assert len(bank) == 64  # the eight 40 px images are below min_size 64
    assert build_generator(c.model)(torch.randn(2, 128)).shape == (2, 3, 64, 64)


@pytest.mark.slow
def test_naruto_matches_the_source_parameter_counts_and_options():
    c = compose("naruto")
    g, d = build_generator(c.model), build_discriminator(c.model)
    assert 3.8e6 <= count_parameters(g) <= 4.2e6, count_parameters(g)  # ~4M
    assert 0.36e6 <= count_parameters(d) <= 0.44e6, count_parameters(d)  # ~0.4M
    for net in (g, d):
        assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in net.modules())
        assert any(isinstance(m, torch.nn.LeakyReLU) for m in net.modules())
        assert not any(type(m) is torch.nn.ReLU for m in net.modules())
    g.train()
    z = torch.randn(4, c.model.nz)
    assert not torch.equal(g(z), g(z))  # dropout is active while training


# What each seed project trained with, on the keys its source names (the experiment file's
# header): whatever animegan's own defaults are, `experiment=<seed>` still composes to these.
PAPER = {"loss.name": "bce", "loss.real_label": 1.0, "loss.r1_gamma": 0.0, "optimizer.name": "adam",
         "optimizer.betas": [0.5, 0.999], "train.ema": False, "train.diffaugment": [], "train.instance_noise": 0.0,
         "model.image_size": 64, "model.minibatch_std": False}
SEEDS = {
    "oulu": {**PAPER, "optimizer.lr": 2e-4, "batch_size": 128, "epochs": 40, "model.nz": 100, "model.ngf": 64,
             "model.ndf": 64, "dataset.name": "anime36k"},
    "nyu": {**PAPER, "optimizer.lr": 2e-4, "batch_size": 128, "train.g_steps": 2, "train.d_steps": 1,
            "dataset.name": "anime36k"},
    "afg": {**PAPER, "optimizer.lr": 2e-4, "batch_size": 128, "epochs": 33, "checkpoint.export": "afg.pt",
            "dataset.name": "animefaces63k"},
    "gochiusa": {**PAPER, "optimizer.lr": 2e-4, "batch_size": 128, "model.nz": 128, "dataset.min_size": 64,
                 "dataset.near_dedupe": True, "dataset.name": "gochiusa"},
    "naruto": {**PAPER, "optimizer.lr": 1e-3, "optimizer.lr_g": None, "optimizer.lr_d": None, "batch_size": 128,
               "model.g_dropout": 0.3, "model.d_dropout": 0.3, "model.g_leaky_slope": 0.2, "dataset.name": "naruto"},
    "paper": {**PAPER, "optimizer.lr": 2e-4, "batch_size": 128, "model.nz": 100, "model.ngf": 64, "model.ndf": 64},
}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_experiment_composes_to_its_seeds_recipe_not_to_animegans_defaults(name, faces):
    expected = SEEDS[name]
    # on its own dataset preset and on a folder the user gives (the paper's recipe has none)
    for conf in (compose(name), compose(name, "dataset=folder", f"dataset.root={faces}")):
        wrong = {k: (v, config_value(conf, k)) for k, v in expected.items()
                 if not (k == "dataset.name" and conf.dataset.name == "folder") and config_value(conf, k) != v}
        assert not wrong, f"experiment={name} (expected, composed): {wrong}"


def test_paper_experiment_trains_the_raw_weights_without_smoothing(tmp_path, faces):
    _, export, state = run_experiment("paper", tmp_path / "run", faces, "dataset=folder",
                                      f"dataset.root={faces}", f"dataset.cache_dir={tmp_path / 'cache'}")
    group = state["opt_g"]["param_groups"][0]
    assert (group["lr"], tuple(group["betas"])) == (2e-4, (0.5, 0.999))
    exported = torch.load(export, weights_only=True)["state_dict"]
    assert "generator_ema" not in state  # the export is the trained generator itself
    assert all(torch.equal(exported[k], state["generator"][k].float()) for k in exported)


@pytest.mark.slow
def test_real_data_defaults_smooth_labels_and_export_the_average_of_g(tmp_path, faces):
    from animegan.compose import compose_config, resolve_config

    job = ["dataset=folder", f"dataset.root={faces}"]  # what `animegan-train dataset=folder ...` composes
    c = resolve_config(compose_config(job), job, os.getcwd())
    g_opt, d_opt = build_optimizers(c.optimizer, build_generator(c.model), build_discriminator(c.model))
    assert all(group["lr"] == 5e-4 and group["betas"] == (0.0, 0.99) for opt in (g_opt, d_opt)
               for group in opt.param_groups)
    assert (c.batch_size, c.epochs, c.train.ema) == (32, 40, True)
    loss = build_loss(c.loss.name, real_label=c.loss.real_label)
    at_target = torch.tensor([0.9]).logit().requires_grad_(True)  # BCE to 0.9 is smallest where D(x) = 0.9, not 1
    loss.discriminator(at_target, torch.zeros(1))[0].backward()
    assert abs(at_target.grad.item()) < 1e-6

    # a tiny run of the defaults on the folder: the export is the averaged generator
    conf = tiny_conf(f"dataset.root={faces}", f"dataset.cache_dir={tmp_path / 'cache'}", "dataset=folder",
                     synthetic=False)
    assert conf.train.ema and conf.loss.real_label == 0.9
    export = train_config(conf, tmp_path / "run", show_progress=False).export
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    exported = torch.load(export, weights_only=True)["state_dict"]
    assert "generator_ema" in state and exported.keys() == state["generator_ema"].keys()
    assert all(torch.equal(exported[k], state["generator_ema"][k].float()) for k in exported)
    assert any(not torch.equal(exported[k], state["generator"][k].float()) for k in exported)
