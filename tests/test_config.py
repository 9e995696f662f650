"""Config composition, and one-line errors for bad configs before any work starts."""

from __future__ import annotations

import pytest

from animegan.cli.train import compose_config, preflight, resolve_config
from animegan.config import TrainConfig, validate
from animegan.errors import AnimeganError
from conftest import run_cli

GROUPS = {
    "dataset": ["synthetic", "folder", "anime36k"],
    "model": ["dcgan32", "dcgan64", "dcgan128"],
    "optimizer": ["adam", "sgd", "rmsprop"],
    "loss": ["bce"],
}


def test_default_config_composes_to_the_documented_defaults():
    conf = resolve_config(compose_config([]), [])
    assert isinstance(conf, TrainConfig)
    assert conf.dataset.kind == "synthetic"
    assert conf.model.name == "dcgan64" and conf.model.image_size == 64 and conf.model.nz == 100
    assert conf.optimizer.name == "adam" and conf.optimizer.lr == 2e-4 and conf.optimizer.betas == [0.5, 0.999]
    assert conf.batch_size == 128 and conf.device == "auto"
    assert conf.train.d_steps == 1 and conf.train.g_steps == 1


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"] + (["dataset.root=/somewhere"] if option == "folder" else [])
    conf = resolve_config(compose_config(overrides), overrides)
    assert getattr(conf, group).name == option


def test_model_sizes_and_overrides_reach_the_schema():
    conf = resolve_config(compose_config(["model=dcgan128", "model.nz=128", "optimizer.lr_d=4e-4"]), [])
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
        ("dataset.foo=1", "dataset.foo"),
        ("+colour=red", "colour"),
        ("dataset=nope", "dataset"),
        ("dataset=folder", "dataset.root"),
        ("model.nz=1,2", "-m"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(override, expected):
    with pytest.raises(AnimeganError) as info:
        preflight([override])
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_key_lists_the_allowed_keys():
    with pytest.raises(AnimeganError, match="unknown"):
        preflight(["model.width=3"])
    with pytest.raises(AnimeganError, match="available: .*anime36k.*synthetic"):
        preflight(["dataset=nope"])


def test_validate_rejects_unknown_keys_in_a_plain_dict():
    with pytest.raises(AnimeganError, match="'model.depth' is unknown; keys allowed there: .*ngf"):
        validate({"model": {"depth": 3}})


def test_multirun_checks_every_job_of_the_sweep():
    preflight(["-m", "optimizer.lr=1e-4,2e-4", "train.g_steps=1,2"])
    with pytest.raises(AnimeganError, match="optimizer.lr"):
        preflight(["-m", "optimizer.lr=1e-4,-1"])


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
        "name: dcgan64\nimage_size: 64\nnz: 77\nngf: 8\nndf: 8\nd_dropout: 0.0\nleaky_slope: 0.2\n")
    (tmp_path / "configs" / "model" / "mine.yaml").write_text(
        "name: mine\nimage_size: 32\nnz: 16\nngf: 4\nndf: 4\nd_dropout: 0.0\nleaky_slope: 0.1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_config(compose_config([]), []).model.nz == 77  # overrides the shipped file
    assert resolve_config(compose_config(["model=mine"]), []).model.image_size == 32  # adds a new option
