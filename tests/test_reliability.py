"""Reliability: durable writes, resume=auto, one training per run directory, a full disk or
an unwritable folder, and checkpoints from elsewhere that every loader refuses in one line."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from animegan import checkpoint as ckpt
from animegan import files
from animegan.cli import eval as eval_cli
from animegan.cli import sample as sample_cli
from animegan.cli.train import check_command
from animegan.errors import AnimeganError
from animegan.launch import train_config
from animegan.runlock import holding_run_directory
from conftest import TINY, load_state, run_cli, tiny_conf

# --- durable writes -------------------------------------------------------------------------------------------------


def test_a_write_reaches_the_disk_before_its_name_and_the_rename_is_made_durable(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.path.basename(os.readlink(
        f"/proc/self/fd/{fd}")))) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", os.path.basename(b))) or real_replace(a, b))
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    with files.atomic_replace(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # the previous file stays until the new one is complete
    assert events == [("fsync", ".last.pt.tmp-%d" % os.getpid()), ("replace", "last.pt"), ("fsync", tmp_path.name)]
    assert target.read_bytes() == b"new"


@pytest.mark.slow
def test_an_unwritable_run_directory_is_one_line_before_anything_is_made(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_cli("animegan-train", [*TINY, f"hydra.run.dir={blocker / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"animegan-train: error: cannot write the run directory {blocker / 'run'}: {blocker} is not a folder; "
        "choose another hydra.run.dir"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# --- resume=auto ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_auto_starts_fresh_then_continues_from_the_newest_state_skipping_a_damaged_one(tmp_path):
    run = tmp_path / "run"
    args = [*TINY, "checkpoint.keep_every=1", "resume=auto", f"hydra.run.dir={run}"]
    run_cli("animegan-train", [*args, "epochs=2"], cwd=tmp_path, check=True)  # nothing there yet: a fresh start
    assert load_state(run / "checkpoints" / "last.pt")["step"] == 8

    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # damaged (a disk error, a bad copy)
    result = run_cli("animegan-train", [*args, "epochs=3"], cwd=tmp_path, check=True)
    assert f"skipping {last}" in result.stderr  # named
    log = (run / "train.log").read_text()
    assert f"resuming from {run / 'checkpoints' / 'epoch_002.pt'} at epoch 2, step 8" in log
    assert load_state(last)["step"] == 12  # replaced by the resumed run's state


def test_resume_auto_needs_the_run_directory():
    with pytest.raises(AnimeganError, match="resume=auto .*hydra.run.dir"):
        check_command(["resume=auto"], os.getcwd())


# --- one training per run directory ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_training_into_the_same_run_directory_is_refused(tmp_path):
    run = tmp_path / "run"
    with holding_run_directory(run):  # this test process plays the first training
        result = run_cli("animegan-train", [*TINY, f"hydra.run.dir={run}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "another training is writing to" in lines[0] and f"pid {os.getpid()}" in lines[0]
    assert not (run / ".hydra").exists()  # refused before Hydra wrote anything


@pytest.mark.slow
def test_a_crashed_training_does_not_leave_its_lock_behind(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from animegan.runlock import "
                               "holding_run_directory; held = holding_run_directory(sys.argv[1]); held.__enter__(); "
                               "print('locked', flush=True); time.sleep(60)", str(run)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(AnimeganError, match="another training"), holding_run_directory(run):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    time.sleep(0.1)
    with holding_run_directory(run):  # the kernel released it with the process
        assert f"pid {os.getpid()}" in (run / ".animegan.lock").read_text()
    assert not (run / ".animegan.lock").exists()  # and a run that ends deletes the file


# --- checkpoints from elsewhere -------------------------------------------------------------------------------------


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _hostile_files(folder: Path, good: Path) -> dict:
    """name -> path of a file each loader must refuse with one line."""
    folder.mkdir()
    state = load_state(good)
    out = {}

    def save(name, obj):
        torch.save(obj, folder / name)
        out[name] = folder / name

    save("runs_code.pt", {"format": ckpt.TRAINING_FORMAT, "payload": _RunsCode()})
    (folder / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["truncated.pt"] = folder / "truncated.pt"
    (folder / "not_a_checkpoint.pt").write_bytes(pickle.dumps({"hello": "world"}))
    out["not_a_checkpoint.pt"] = folder / "not_a_checkpoint.pt"
    save("newer.pt", {**state, "version": ckpt.FORMAT_VERSION + 1})
    wrong = dict(state, config={**state["config"], "model": {**state["config"]["model"], "ngf": 16}})
    save("tensors_do_not_match.pt", wrong)
    for name, key, value in (("huge_width.pt", "ngf", 10**6), ("huge_image.pt", "image_size", 10**5)):
        save(name, dict(state, config={**state["config"], "model": {**state["config"]["model"], key: value}}))
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(folder / "compressed.pt", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))  # a zip bomb has this shape
    out["compressed.pt"] = folder / "compressed.pt"
    save("missing_parts.pt", {"format": ckpt.TRAINING_FORMAT, "version": 1, "config": {}})
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    run = tmp_path_factory.mktemp("good")
    train_config(tiny_conf(), run, show_progress=False)
    return _hostile_files(run / "hostile", run / "checkpoints" / "last.pt")


LOADERS = ["resume", "sample", "eval"]


@pytest.mark.slow
@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_refuses_every_hostile_checkpoint_in_one_line(hostile, loader, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, path in hostile.items():
        if loader == "resume":
            with pytest.raises(AnimeganError) as info:
                check_command([f"resume={path}"], str(tmp_path))
            message = str(info.value)
        else:
            main = sample_cli.main if loader == "sample" else eval_cli.main
            with pytest.raises(SystemExit) as exit_info:
                main(["--ckpt", str(path), "--n", "4", "--device", "cpu"])
            assert exit_info.value.code == 2, name
            message = capsys.readouterr().err.strip()
            assert len(message.splitlines()) == 1, (name, message)
        assert "\n" not in message and str(path) in message, (loader, name, message)
    assert not (tmp_path / "pwned").exists()  # no code ran
