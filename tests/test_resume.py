"""Resume never destroys work: older states branch into a new run directory, a changed batch
order is refused unless asked for, saved paths work from any directory, and a kill during
an epoch-end evaluation loses neither the epoch nor the evaluation."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

from animegan import fidelity
from animegan.artefacts import MetricsLog
from animegan.cli import train as train_cli
from animegan.errors import AnimeganError
from animegan.launch import train_config
from conftest import TINY, call_cli, image_folder, load_state, run_cli, standin_eval, tiny_conf
from test_training import _rows


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_files(run: Path) -> dict:
    return {p.relative_to(run): _digest(p) for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_resume_from_an_older_checkpoint_branches_and_leaves_the_run_untouched(tmp_path):
    run = tmp_path / "run"
    train_config(tiny_conf("checkpoint.keep_every=1", "epochs=3"), run, show_progress=False)
    before = _run_files(run)

    result = run_cli("animegan-train", [f"resume={run / 'checkpoints' / 'epoch_001.pt'}", "epochs=2"],
                     cwd=tmp_path, check=True)
    assert _run_files(run) == before  # not one byte of the newer run changed

    branches = list((tmp_path / "outputs").glob("*/*/checkpoints/last.pt"))
    assert len(branches) == 1, result.stdout
    branch = branches[0].parent.parent
    state = load_state(branch / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 8
    assert state["parent"] == {"checkpoint": str(run / "checkpoints" / "epoch_001.pt"), "step": 4}
    assert "branching from" in (branch / "train.log").read_text()
    # The branch's metrics start with the parent's rows up to the checkpoint, then its own.
    rows = _rows(branch)
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    assert rows[:4] == _rows(run)[:4]


@pytest.mark.slow
def test_resuming_an_older_state_inside_its_own_run_directory_is_refused(tmp_path):
    run = tmp_path / "run"
    train_config(tiny_conf("epochs=2", "checkpoint.keep_every=1"), run, show_progress=False)
    before = _run_files(run)
    with pytest.raises(AnimeganError, match="older than .*last.pt.*overwrite"):
        train_config(tiny_conf(f"resume={run / 'checkpoints' / 'epoch_001.pt'}", "epochs=3"), run,
                     show_progress=False)
    assert _run_files(run) == before


@pytest.mark.slow
def test_resuming_the_newest_state_continues_in_place(tmp_path):
    run = tmp_path / "run"
    train_config(tiny_conf("epochs=1", "checkpoint.keep_every=1"), run, show_progress=False)
    # epoch_001.pt holds the same step as last.pt: nothing newer exists, so this is the run's newest state too.
    run_cli("animegan-train", [f"resume={run / 'checkpoints' / 'epoch_001.pt'}", "epochs=2"], cwd=tmp_path, check=True)
    assert not (tmp_path / "outputs").exists()
    assert load_state(run / "checkpoints" / "last.pt")["step"] == 8
    assert "parent" not in load_state(run / "checkpoints" / "last.pt") or \
        load_state(run / "checkpoints" / "last.pt")["parent"] == {}


@pytest.mark.parametrize("change,key", [("batch_size=32", "batch_size"), ("seed=5", "seed"),
                                        ("dataset.flip=false", "dataset.flip")])
def test_a_resume_that_changes_the_batch_order_is_one_line_naming_the_key(tmp_path, change, key):
    run = tmp_path / "run"
    train_config(tiny_conf("epochs=1"), run, show_progress=False)
    before = _run_files(run)
    result = call_cli(train_cli.main, [f"resume={run / 'checkpoints' / 'last.pt'}", "epochs=2", change], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{key}=" in lines[0] and "resume_new_order=true" in lines[0]
    assert _run_files(run) == before


@pytest.mark.slow
def test_resume_new_order_restarts_the_interrupted_epoch_in_the_new_order(tmp_path):
    """A mid-epoch checkpoint at batch 6 of 8; with batch_size 64 an epoch has 2 batches,
    so the old position does not exist any more (it crashed before)."""
    run = tmp_path / "run"
    common = ["dataset.num_images=128", "train.max_minutes=0"]
    train_config(tiny_conf(*common, "checkpoint.every_n_steps=6", "train.max_minutes=1e-9", "train.log_every=6"), run,
                 show_progress=False)
    state = load_state(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (0, 6)
    resume = f"resume={run / 'checkpoints' / 'last.pt'}"
    with pytest.raises(AnimeganError, match="batch_size=64 differs"):
        train_config(tiny_conf(*common, resume, "batch_size=64", "epochs=2"), run, show_progress=False)
    train_config(tiny_conf(*common, resume, "batch_size=64", "epochs=2", "resume_new_order=true"), run,
                 show_progress=False)
    state = load_state(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"]) == (2, 6 + 2 * 2)  # epoch 1 replayed whole, then epoch 2
    assert state["data_order"]["batch_size"] == 64


def _faces(folder: Path, count: int, start: int = 0) -> None:
    image_folder(folder, count, start=start, name="{:04d}.png")


@pytest.mark.slow
def test_changed_images_are_refused_on_resume(tmp_path):
    faces = tmp_path / "faces"
    _faces(faces, 40)
    run = tmp_path / "run"
    opts = ["dataset=folder", f"dataset.root={faces}", "dataset.min_size=0", "dataset.workers=1"]
    train_config(tiny_conf(*opts, "batch_size=8", synthetic=False), run, show_progress=False)
    _faces(faces, 4, start=40)  # the user adds images to the folder
    result = run_cli("animegan-train", [f"resume={run / 'checkpoints' / 'last.pt'}", "epochs=2"], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert "the images of dataset 'folder' differ" in result.stdout + result.stderr
    assert load_state(run / "checkpoints" / "last.pt")["epoch"] == 1


@pytest.mark.slow
def test_saved_paths_are_absolute_so_resume_and_eval_work_from_anywhere(tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    _faces(home / "faces", 32)
    elsewhere.mkdir()
    run = tmp_path / "run"
    monkeypatch.chdir(home)  # the first run names its folder relative to where it starts
    train_config(tiny_conf("dataset=folder", "dataset.root=faces", "dataset.min_size=0", "batch_size=8",
                           synthetic=False), run, show_progress=False)
    saved = load_state(run / "checkpoints" / "last.pt")["config"]
    assert saved["dataset"]["root"] == str(home / "faces")
    result = run_cli("animegan-train", [f"resume={run / 'checkpoints' / 'last.pt'}", "epochs=2"], cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert load_state(run / "checkpoints" / "last.pt")["epoch"] == 2


@pytest.mark.slow
def test_a_kill_during_the_epoch_end_evaluation_keeps_the_epoch_and_resume_evaluates_it(tmp_path, monkeypatch):
    """last.pt is written before FID: an evaluation that never returns (SIGKILL during a
    10-minute CPU evaluation; simulated by an exception) loses nothing of the epoch, and
    the resumed run evaluates that epoch before training on."""
    run = tmp_path / "run"
    real_evaluate = fidelity.evaluate

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fidelity, "evaluate", killed)
    opts = ["epochs=2", "eval.every_n_epochs=1", *standin_eval(tmp_path / "stats")]
    with pytest.raises(KeyboardInterrupt):
        train_config(tiny_conf(*opts), run, show_progress=False)
    state = load_state(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 4)  # the epoch is safe
    assert (run / "samples" / "epoch_001.png").is_file()

    monkeypatch.setattr(fidelity, "evaluate", real_evaluate)
    train_config(tiny_conf(*opts, f"resume={run / 'checkpoints' / 'last.pt'}"), run, show_progress=False)
    evals = MetricsLog(run / "metrics.csv").split()[1]
    assert [int(r["epoch"]) for r in evals] == [1, 2]  # epoch 1 evaluated on resume, then epoch 2
    assert load_state(run / "checkpoints" / "last.pt")["fid"]["last_epoch"] == 2
    assert all(float(r["fid"]) >= 0 and float(r["kid_std"]) >= 0 for r in evals)  # real evaluations, written out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["resume=PATH", "resume=auto"])
def test_a_resume_loads_its_checkpoint_once(tmp_path, monkeypatch, how):
    """The command line plans the resume (run directory, branch, config) from one load of
    the checkpoint, and the run it starts uses that plan: no second, third or fourth load."""
    import sys

    import torch

    from animegan.cli import train as train_cli

    run = tmp_path / "run"
    train_config(tiny_conf(), run, show_progress=False)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(Path(f).name) or real_load(f, *a, **k))
    monkeypatch.chdir(tmp_path)
    resume = f"resume={run / 'checkpoints' / 'last.pt'}" if how == "resume=PATH" else "resume=auto"
    monkeypatch.setattr(sys, "argv", ["animegan-train", *TINY, "epochs=2", resume, f"hydra.run.dir={run}"])
    train_cli.main()  # in this process: the command line, then the Hydra job it starts
    assert loads == ["last.pt"]
    assert load_state(run / "checkpoints" / "last.pt")["step"] == 8  # it did resume, in place


# ------------------------------------------- a resumed run equals a straight run, bit for bit
# The straight run trains 2 epochs (8 steps); the other stops and is resumed in its own run
# directory: at the end of epoch 1 ("epoch"), or inside epoch 1 when its time budget runs
# out after the first log window ("budget"). Everything the training state holds must then
# be equal: weights, optimiser moments, the EMA, loss scales, random generators, guard, step.
STABILISED = ["train.ema=true", "train.diffaugment=[color,translation,cutout]", "loss.r1_gamma=1.0",
              "loss.penalty_every=2", "model.d_spectral_norm=true", "model.minibatch_std=true"]
RESUME_CASES = {
    "default": ([], "epoch"),
    "stabilised": (STABILISED, "epoch"),
    "wgan_gp_two_critic_steps": (["loss=wgan_gp", "train.d_steps=2", "model.d_batchnorm=false",
                                  "train.diffaugment=[translation]"], "epoch"),
    "fp16_with_penalties": (["model=dcgan32", "train.precision=fp16", "loss=wgan_gp",
                             "train.d_steps=2", "loss.r1_gamma=1.0"], "epoch"),
    "bf16": (["train.precision=bf16", "model=dcgan32"], "budget"),
    "time_budget": ([], "budget"),
    "lr_decay_inside_the_stop": (["optimizer.decay_start=0.25", "optimizer.decay_to=0.5"], "budget"),
}


def _state_differences(a: dict, b: dict, prefix: str = "") -> list:
    """The keys at which two training states differ (all but the config and the parent
    record, which name the resume)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{prefix}keys"]
        return [d for k in a if not (prefix == "" and k in ("config", "parent"))
                for d in _state_differences(a[k], b[k], f"{prefix}{k}.")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return [] if a.dtype == b.dtype and torch.equal(a, b) else [prefix]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _state_differences(x, y, f"{prefix}{i}.")]
    return [] if a == b else [prefix]


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_a_resumed_run_equals_a_straight_run(tmp_path, case):
    switches, stop = RESUME_CASES[case]
    common = [*switches, "epochs=2", "train.log_every=2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_config(tiny_conf(*common), straight, show_progress=False)
    first = ["epochs=1"] if stop == "epoch" else ["train.max_minutes=1e-9"]
    train_config(tiny_conf(*common, *first), resumed, show_progress=False)
    last = resumed / "checkpoints" / "last.pt"
    stopped_at = load_state(last)
    assert (stopped_at["step"], stopped_at["step_in_epoch"]) == ((4, 0) if stop == "epoch" else (2, 2))
    train_config(tiny_conf(*common, f"resume={last}", "train.max_minutes=0"), resumed, show_progress=False)

    a, b = load_state(straight / "checkpoints" / "last.pt"), load_state(last)
    assert a["step"] == 8 and _state_differences(a, b) == []
    assert _rows(straight) == _rows(resumed)  # metrics appended, nothing repeated or lost
    assert all(math.isfinite(float(r[k])) for r in _rows(straight) for k in ("loss_D", "loss_G"))
    if "train.precision=fp16" in switches:
        assert set(a["loss_scaling"]["scalers"]) == {"D", "G"}  # the scales travel with the checkpoint
    if "train.ema=true" in switches:
        assert "generator_ema" in a


@pytest.mark.slow
def test_a_run_stopped_by_its_time_budget_leaves_a_grid_a_timelapse_and_a_generator(tmp_path):
    train_config(tiny_conf("epochs=2", "train.log_every=2", "train.max_minutes=1e-9"), tmp_path, show_progress=False)
    assert load_state(tmp_path / "checkpoints" / "last.pt")["step"] == 2  # after the first log window
    assert (tmp_path / "samples" / "final.png").is_file() and (tmp_path / "samples" / "timelapse.gif").is_file()
    assert (tmp_path / "checkpoints" / "generator.pt").is_file()


@pytest.mark.slow
def test_a_run_with_lr_decay_ends_at_its_floor(tmp_path):
    train_config(tiny_conf("epochs=2", "optimizer.decay_start=0.25", "optimizer.decay_to=0.5"), tmp_path,
                 show_progress=False)
    # the last of 8 steps (step 7) ran at 1 - 0.5 * (7 - 2) / 6 of lr 5e-4
    lr = load_state(tmp_path / "checkpoints" / "last.pt")["opt_g"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(5e-4 * (1 - 0.5 * 5 / 6))
