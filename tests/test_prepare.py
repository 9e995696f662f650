"""Dataset presets and the `animegan-prepare` command (in-process and as the installed script)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from animegan.cli import prepare as prepare_cli
from animegan.compose import compose_config
from animegan.config_checks import validate
from conftest import image_folder

PRESETS = ["anime36k", "animefaces63k", "animefaces21k", "gochiusa", "naruto"]
SCRIPT = Path(sys.executable).parent / "animegan-prepare"


def make_folder(root: Path, n: int = 5) -> Path:
    """n good pictures, a broken file and a grey one."""
    image_folder(root, n, name="{}.png")
    (root / "broken.jpg").write_text("not an image")
    Image.new("L", (40, 40), 100).save(root / "gray.png")
    return root


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_live_under_one_data_home(preset, monkeypatch):
    monkeypatch.setenv("ANIMEGAN_DATA", "/srv/animegan-data")
    conf = validate(compose_config([f"dataset={preset}"])).dataset
    assert conf.name == preset and conf.kind == "folder"
    assert conf.root == f"/srv/animegan-data/{preset}"
    assert len(conf.source) > 40  # says how to get the data
    monkeypatch.delenv("ANIMEGAN_DATA")
    assert validate(compose_config([f"dataset={preset}"])).dataset.root == f"data/{preset}"
    root = validate(compose_config([f"dataset={preset}", "dataset.root=/elsewhere"])).dataset.root
    assert root == "/elsewhere"


@pytest.mark.parametrize("preset", PRESETS)
def test_missing_preset_folder_names_preset_path_and_source(preset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIMEGAN_DATA", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        prepare_cli.main([f"dataset={preset}"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"animegan-prepare: error: dataset '{preset}': folder not found: {tmp_path / preset}; ")
    source = validate(compose_config([f"dataset={preset}"])).dataset.source
    assert err.endswith(source)


def test_prepare_builds_then_confirms(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs")
    args = ["dataset=folder", f"dataset.root={root}", "model.image_size=32"]
    prepare_cli.main(args)
    out = capsys.readouterr().out
    assert re.search(r"\n  kept +6\n", out) and re.search(r"\n    not an image +1\n", out)
    assert re.search(r"\n    grayscale +1\n", out) and "(built, " in out
    assert (root / ".animegan-cache" / "32px.json").exists()
    prepare_cli.main(args)
    assert "(up to date, reused)" in capsys.readouterr().out
    prepare_cli.main([*args[:2], "model=dcgan128"])  # the model config sets the resolution
    assert (root / ".animegan-cache" / "128px.json").exists()


@pytest.mark.parametrize("args,expected", [
    (["dataset=folder", "dataset.root=/x", "dataset.crop=diagonal"], "dataset.crop"),
    (["dataset=folder", "dataset.root=/x", "dataset.min_size=-1"], "dataset.min_size"),
    (["dataset=folder", "dataset.root=/x", "dataset.near_dedupe_distance=65"], "dataset.near_dedupe_distance"),
    (["dataset=folder"], "dataset.root"),
    (["dataset=nope"], "unknown dataset 'nope'"),
    (["dataset.colour=1"], "dataset.colour"),
    ([], "nothing to prepare"),
])
def test_bad_config_is_one_line(args, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        prepare_cli.main(args)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err


@pytest.mark.slow
def test_installed_console_script(tmp_path):
    root = make_folder(tmp_path / "imgs")
    env = dict(os.environ, ANIMEGAN_DATA=str(tmp_path))
    run = subprocess.run([str(SCRIPT), "dataset=folder", f"dataset.root={root}", "model.image_size=16",
                          f"dataset.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert re.search(r"\n  kept +6\n", run.stdout) and str(tmp_path / "cache") in run.stdout
    missing = subprocess.run([str(SCRIPT), "dataset=naruto"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"folder not found: {tmp_path / 'naruto'}" in missing.stderr
