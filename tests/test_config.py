"""Config composition, and one-line errors for bad configs before any work starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from animegan.compose import compose_config, resolve_config
from animegan.cli.train import check_command
from animegan.config import RunConfig
from animegan.config_checks import validate
from animegan.errors import AnimeganError
from conftest import run_cli

GROUPS = {
    "dataset": ["synthetic", "folder", "anime36k"],
    "model": ["dcgan32", "dcgan64", "dcgan128"],
    "optimizer": ["adam", "sgd", "rmsprop"],
    "loss": ["bce", "hinge", "lsgan", "wgan_gp", "rpgan"],
}


def test_default_config_composes_to_the_documented_defaults():
    conf = resolve_config(compose_config([]), [], os.getcwd())
    assert isinstance(conf, RunConfig)
    assert conf.dataset.kind == "synthetic"
    assert conf.model.image_size == 64 and conf.model.nz == 100
    # The built-in faces with DCGAN-64 and Adam bring the default run's settings (docs/configuration.md's table) ...
    assert conf.optimizer.name == "adam" and conf.optimizer.lr == 5e-4 and conf.optimizer.betas == [0.0, 0.99]
    assert conf.batch_size == 64 and conf.device == "auto" and conf.model.minibatch_std
    assert conf.train.d_steps == 1 and conf.train.g_steps == 1
    # ... which stay with that pairing: another model (or any real dataset) trains the recipe
    # for real faces (docs/configuration.md's second table), without the synthetic run's minibatch std,
    # DiffAugment and instance noise.
    other = resolve_config(compose_config(["model=dcgan32"]), ["model=dcgan32"], os.getcwd())
    assert other.optimizer.lr == 5e-4 and other.optimizer.betas == [0.0, 0.99] and other.batch_size == 32
    assert other.train.ema and other.loss.real_label == 0.9 and other.epochs == 40
    assert not other.model.minibatch_std and other.train.diffaugment == [] and other.train.instance_noise == 0
    sgd = resolve_config(compose_config(["optimizer=sgd"]), ["optimizer=sgd"], os.getcwd())
    assert sgd.optimizer.betas == [0.5, 0.999] and sgd.batch_size == 64  # Adam's betas are not handed to SGD


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"] + (["dataset.root=/somewhere"] if option == "folder" else [])
    conf = resolve_config(compose_config(overrides), overrides, os.getcwd())
    if group == "model":  # a model option is its image size
        assert f"dcgan{conf.model.image_size}" == option
    else:
        assert getattr(conf, group).name == option


def test_model_sizes_and_overrides_reach_the_schema():
    conf = resolve_config(compose_config(["model=dcgan128", "model.nz=128", "optimizer.lr_d=4e-4"]), [], os.getcwd())
    assert conf.model.image_size == 128 and conf.model.nz == 128
    assert conf.optimizer.lr_d == 4e-4 and conf.optimizer.lr_g is None


@pytest.mark.parametrize(
    "override,expected",
    [
        ("batch_size=0", "batch_size"),
        ("epochs=-1", "epochs"),
        ("optimizer.lr=-0.001", "optimizer.lr"),
        ("model.image_size=48", "model.image_size"),
        ("model.d_dropout=1.5", "model.d_dropout"),
        ("device=tpu", "device"),
        ("batch_size=abc", "batch_size"),
        ("optimizer.betas=[0.5]", "optimizer.betas"),
        ("train.g_steps=0", "train.g_steps"),
        ("train.ema_kimg=0", "train.ema_kimg"),
        ("train.ema_rampup=1.5", "train.ema_rampup"),
        ("train.ema_calibration_images=1", "train.ema_calibration_images"),
        ("loss.r2_gamma=-1", "loss.r2_gamma"),
        ("optimizer.decay_start=1.5", "optimizer.decay_start"),
        ("optimizer.decay_to=-0.1", "optimizer.decay_to"),
        ("checkpoint.snapshot_minutes=[5,-1]", "checkpoint.snapshot_minutes"),
        ("checkpoint.snapshot_minutes=[5,5]", "checkpoint.snapshot_minutes"),
        ("dataset.foo=1", "dataset.foo"),
        ("+colour=red", "colour"),
        ("dataset=nope", "dataset"),
        ("dataset=folder", "dataset.root"),
        ("model.nz=1,2", "-m"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(override, expected):
    with pytest.raises(AnimeganError) as info:
        check_command([override], os.getcwd())
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_key_lists_the_allowed_keys():
    with pytest.raises(AnimeganError, match="unknown"):
        check_command(["model.width=3"], os.getcwd())
    with pytest.raises(AnimeganError, match="available: .*anime36k.*synthetic"):
        check_command(["dataset=nope"], os.getcwd())


def test_validate_rejects_unknown_keys_in_a_plain_dict():
    with pytest.raises(AnimeganError, match="'model.depth' is unknown; keys allowed there: .*ngf"):
        validate({"model": {"depth": 3}})


@pytest.mark.slow
def test_multirun_checks_every_job_of_the_sweep():
    check_command(["-m", "optimizer.lr=1e-4,2e-4", "train.g_steps=1,2"], os.getcwd())
    with pytest.raises(AnimeganError, match="optimizer.lr"):
        check_command(["-m", "optimizer.lr=1e-4,-1"], os.getcwd())


@pytest.mark.parametrize("argv", [["-m", "--cfg", "job", "optimizer.lr=1e-4,2e-4"], ["--info", "-c", "job"]])
def test_two_hydra_modes_are_refused_in_one_line(argv):
    # Hydra itself answers these with a ValueError traceback
    with pytest.raises(AnimeganError, match="cannot be combined: give one of them"):
        check_command(argv, os.getcwd())
    check_command(["--cfg", "job"], os.getcwd())  # one mode is Hydra's to handle


@pytest.mark.slow
def test_cli_bad_config_prints_one_line_and_creates_nothing(tmp_path):
    result = run_cli("animegan-train", ["batch_size=0"], cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("animegan-train: error: ") and "batch_size" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run directory was made


def test_local_configs_folder_overrides_and_adds_configs(tmp_path, monkeypatch):
    (tmp_path / "configs" / "model").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "dcgan64.yaml").write_text(
        "image_size: 64\nnz: 77\nngf: 8\nndf: 8\nd_dropout: 0.0\nleaky_slope: 0.2\n")
    (tmp_path / "configs" / "model" / "mine.yaml").write_text(
        "image_size: 32\nnz: 16\nngf: 4\nndf: 4\nd_dropout: 0.0\nleaky_slope: 0.1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_config(compose_config([]), [], os.getcwd()).model.nz == 77  # overrides the shipped file
    assert resolve_config(compose_config(["model=mine"]), [], os.getcwd()).model.image_size == 32  # adds a new option


# --- combinations that cannot work, and options that would be ignored ---------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("overrides", [["train.compile=true", "loss=wgan_gp"],
                                       ["train.compile=true", "loss.r1_gamma=1"],
                                       ["train.compile=true", "loss=rpgan"]])
def test_compile_with_a_double_backward_is_refused_before_any_work(tmp_path, overrides):
    result = run_cli("animegan-train", overrides, cwd=tmp_path)
    assert result.returncode == 2 and list(tmp_path.iterdir()) == []
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.compile=true" in lines[0] and "train.compile=false" in lines[0]


@pytest.mark.slow
def test_wgan_gp_with_batchnorm_in_d_warns_and_r1_does_not(tmp_path, caplog):
    import logging

    from animegan.launch import train_config
    from conftest import tiny_conf

    caplog.set_level(logging.WARNING, logger="animegan")
    train_config(tiny_conf("loss=wgan_gp", "model.d_batchnorm=true", "train.d_steps=1", "output.sample_every=0"),
                 tmp_path / "bn", show_progress=False)
    assert any("BatchNorm" in r.getMessage() and "d_batchnorm=false" in r.getMessage() for r in caplog.records)
    caplog.clear()
    for name, extra in (("wgan", ["loss=wgan_gp", "train.d_steps=1"]), ("r1", ["loss.r1_gamma=1"])):
        train_config(tiny_conf(*extra, "output.sample_every=0"), tmp_path / name, show_progress=False)
    assert not any("BatchNorm" in r.getMessage() for r in caplog.records)  # wgan_gp's preset has no BatchNorm in D


@pytest.mark.slow
def test_the_wgan_gp_preset_trains_as_its_file_says(tmp_path):
    """configs/loss/wgan_gp.yaml: five critic steps per G step and no BatchNorm in the
    critic; with Adam, the paper's lr 1e-4 and betas (0, 0.9). The command line still wins."""
    from animegan.launch import train_config
    from conftest import load_state, tiny_conf

    conf = tiny_conf("loss=wgan_gp", "output.sample_every=0")
    train_config(conf, tmp_path / "run", show_progress=False)
    state = load_state(tmp_path / "run" / "checkpoints" / "last.pt")
    steps = {net: int(next(iter(state[net]["state"].values()))["step"]) for net in ("opt_g", "opt_d")}
    assert steps["opt_d"] == 5 * steps["opt_g"] == 5 * state["step"]
    assert not any("running_mean" in k for k in state["discriminator"])  # no BatchNorm in the critic
    group = state["opt_d"]["param_groups"][0]
    assert (group["lr"], tuple(group["betas"])) == (1e-4, (0.0, 0.9))
    assert tiny_conf("loss=wgan_gp", "optimizer=sgd").optimizer.betas == [0.5, 0.999]  # not sgd's business
    mine = tiny_conf("loss=wgan_gp", "train.d_steps=2", "optimizer.lr=3e-4")
    assert (mine.train.d_steps, mine.optimizer.lr) == (2, 3e-4)


@pytest.mark.parametrize("config,key", [
    ({"optimizer": {"name": "sgd", "betas": [0.0, 0.9]}}, "optimizer.betas"),
    ({"optimizer": {"name": "rmsprop", "betas": [0.0, 0.9]}}, "optimizer.betas"),
    ({"optimizer": {"name": "adam", "momentum": 0.9}}, "optimizer.momentum"),
    ({"loss": {"name": "hinge", "gp_weight": 5.0}}, "loss.gp_weight"),
    ({"loss": {"name": "bce", "gp_weight": 5.0}}, "loss.gp_weight"),
    ({"dataset": {"kind": "synthetic", "crop": "resize"}}, "dataset.crop"),
    ({"dataset": {"kind": "synthetic", "root": "/data/faces"}}, "dataset.root"),
    ({"dataset": {"kind": "folder", "root": "/data", "num_images": 500}}, "dataset.num_images"),
    ({"model": {"name": "dcgan32"}}, "model.name"),
])
def test_options_that_would_be_ignored_are_refused_with_one_line(config, key):
    with pytest.raises(AnimeganError) as info:
        validate(config)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_an_experiment_that_sets_an_option_the_chosen_optimizer_ignores_is_refused(tmp_path, monkeypatch):
    """The way users meet it: a recipe written for Adam, run with optimizer=sgd."""
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    (tmp_path / "configs" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\noptimizer:\n  betas: [0.0, 0.9]\n")
    monkeypatch.chdir(tmp_path)
    check_command(["experiment=mine"], os.getcwd())  # with Adam the betas act
    with pytest.raises(AnimeganError, match="optimizer.betas.*optimizer=adam only"):
        check_command(["experiment=mine", "optimizer=sgd"], os.getcwd())


def test_the_options_that_apply_are_taken_and_reach_the_objects():
    import torch

    from animegan.optimizers import build_optimizers

    def optimizers(*overrides):
        conf = resolve_config(compose_config(list(overrides)), list(overrides), os.getcwd())
        net = torch.nn.Linear(2, 2)
        return build_optimizers(conf.optimizer, net, net)[1].param_groups[0]

    assert optimizers("optimizer=sgd", "optimizer.momentum=0.5")["momentum"] == 0.5
    assert optimizers("optimizer=rmsprop", "optimizer.momentum=0.3")["momentum"] == 0.3
    assert tuple(optimizers("optimizer.betas=[0.0,0.99]")["betas"]) == (0.0, 0.99)


def test_dataset_workers_reaches_the_synthetic_renderer(monkeypatch):
    import torch

    from animegan.data import build_image_bank
    from animegan.data import synthetic

    seen = []

    def render(count, size, seed=0, workers=0):
        seen.append(workers)
        return torch.zeros(count, 3, size, size, dtype=torch.uint8)

    monkeypatch.setattr(synthetic, "render_faces", render)
    conf = resolve_config(compose_config(["dataset.workers=3"]), ["dataset.workers=3"], os.getcwd())
    build_image_bank(conf.dataset, 64, seed=0)
    assert seen == [3]


@pytest.mark.slow
def test_a_saved_config_with_the_old_model_name_still_resumes_and_samples():
    from animegan.compose import with_named_overrides
    from animegan.config import to_dict

    saved = to_dict(resolve_config(compose_config([]), [], os.getcwd()))
    saved["model"]["name"] = "dcgan64"  # written by animegan before model.name was refused
    assert validate(with_named_overrides(saved, compose_config(["epochs=9"]), ["epochs=9"])).epochs == 9


def test_a_saved_config_with_a_fixed_ema_decay_resumes_with_the_same_half_life():
    import math

    from animegan.compose import with_named_overrides
    from animegan.config import to_dict

    saved = to_dict(resolve_config(compose_config(["batch_size=64"]), [], os.getcwd()))
    del saved["train"]["ema_kimg"], saved["train"]["ema_rampup"]
    saved["train"]["ema_decay"] = 0.999  # written by animegan before the half-life was counted in images
    conf = validate(with_named_overrides(saved, compose_config([]), []))
    assert conf.train.ema_rampup == 0.0
    assert 0.5 ** (64 / (conf.train.ema_kimg * 1000)) == pytest.approx(0.999)  # the same decay per step
    assert math.isclose(conf.train.ema_kimg, 44.3, rel_tol=1e-3)


def test_a_saved_config_with_r1_every_resumes_with_the_same_penalty_pace():
    from animegan.compose import with_named_overrides
    from animegan.config import to_dict

    saved = to_dict(resolve_config(compose_config(["loss.penalty_every=3"]), [], os.getcwd()))
    saved["loss"]["r1_every"] = saved["loss"].pop("penalty_every")  # the key's name before it paced R2 too
    assert validate(with_named_overrides(saved, compose_config([]), [])).loss.penalty_every == 3


@pytest.mark.slow
def test_cuda_n_is_a_valid_device_and_a_missing_gpu_is_one_line(tmp_path):
    import torch

    from animegan.device import select_device

    assert validate({"device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(AnimeganError, match="device"):
        validate({"device": "cuda:one"})
    if not torch.cuda.is_available():
        with pytest.raises(AnimeganError, match="device=cuda:1 .*no CUDA GPU"):
            select_device("cuda:1")
        result = run_cli("animegan-train", ["device=cuda:1"], cwd=tmp_path)
        assert result.returncode == 2 and list(tmp_path.iterdir()) == []  # refused before a run directory
        assert len(result.stderr.strip().splitlines()) == 1 and "cuda:1" in result.stderr
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--help"], ["--cfg", "job"], ["batch_size=0"]], ids=["help", "cfg", "refused"])
def test_help_cfg_and_a_refused_config_never_import_torch(argv, tmp_path):
    """What trains nothing starts in a fraction of `import torch` (2-3 s on a small CPU)."""
    code = ("import sys\nfrom animegan.cli import train\nsys.argv = ['animegan-train', *sys.argv[1:]]\n"
            "try:\n    train.main()\nexcept SystemExit:\n    pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "no torch", result.stderr
