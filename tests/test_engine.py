"""The engine around the GAN step: why a run stops, preemption by SIGTERM or Ctrl-C, the
logger's sinks (TensorBoard included), network snapshots, and sweeps that leak nothing
from one job into the next."""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from animegan.launch import train_config
from animegan.face_generator import load_generator
from animegan.stopping import StopReason
from conftest import BIN, TINY, load_state, run_cli, shared_folder, tiny_conf
from test_training import _assert_same_weights, _rows


@pytest.mark.slow
def test_the_run_says_why_it_stopped(tmp_path):
    finished = train_config(tiny_conf("epochs=2"), tmp_path / "a", show_progress=False)
    assert (finished.reason, finished.epoch, finished.step) == (StopReason.FINISHED, 2, 8)
    assert set(finished.final) == {"loss_D", "loss_G", "D_x", "D_G_z"}
    out_of_time = train_config(tiny_conf("epochs=2", "train.max_minutes=1e-9"), tmp_path / "b", show_progress=False)
    assert (out_of_time.reason, out_of_time.step) == (StopReason.OUT_OF_TIME, 2)  # after the first log window
    assert out_of_time.export.is_file() and (tmp_path / "b" / "samples" / "final.png").is_file()
    assert (tmp_path / "b" / "losses.png").is_file()  # drawn at the stop, though no epoch ended


# 64 steps of a 32-px net: a few seconds of training, long enough that the signal lands mid-run
SIGNALLED = ["model=dcgan32", "model.ngf=16", "model.ndf=16", "dataset.num_images=128", "epochs=8",
             "train.log_every=1", "output.sample_every=0", "checkpoint.snapshot_every=0"]


@pytest.fixture(scope="module")
def straight_signalled_run(tmp_path_factory) -> Path:
    """The uninterrupted run the signalled ones must equal, trained once, in this process."""
    return shared_folder(tmp_path_factory, "signalled-straight",
                         lambda run: train_config(tiny_conf(*SIGNALLED), run, show_progress=False))


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_writes_last_pt_and_the_resume_equals_a_straight_run(
        tmp_path, straight_signalled_run, signum, status):
    args, straight, stopped = [*TINY, *SIGNALLED], straight_signalled_run, tmp_path / "stopped"
    proc = subprocess.Popen([str(BIN / "animegan-train"), *args, f"hydra.run.dir={stopped}"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (stopped / "metrics.csv").exists() and len((stopped / "metrics.csv").read_text().splitlines()) > 5:
            break
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, out + err
    assert "Traceback" not in out + err
    last = stopped / "checkpoints" / "last.pt"
    assert f"animegan-train resume={last}" in out + err
    state = load_state(last)
    assert 4 < state["step"] < 64, "the run ended before the signal came"
    assert int(_rows(stopped)[-1]["step"]) == state["step"]  # the state holds every step that was logged
    assert not (stopped / "checkpoints" / "generator.pt").exists()  # the export waits for the end

    run_cli("animegan-train", [f"resume={last}"], cwd=tmp_path, check=True)
    _assert_same_weights(straight / "checkpoints" / "last.pt", last)
    assert _rows(straight) == _rows(stopped)


def _tensorboard_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.mark.slow
def test_tensorboard_holds_the_scalars_the_grid_and_the_hparams(tmp_path):
    train_config(tiny_conf("epochs=2", "train.log_every=1"), tmp_path, show_progress=False)
    events = _tensorboard_events(tmp_path / "tensorboard")
    tags = events.Tags()
    losses = events.Scalars("loss/D")
    assert [e.step for e in losses] == list(range(1, 9))
    csv_losses = [float(r["loss_D"]) for r in _rows(tmp_path)]
    assert [e.value for e in losses] == pytest.approx(csv_losses, abs=1e-5)  # the same numbers as metrics.csv
    assert {"loss/G", "D/real (D(x))", "D/fake (D(G(z)))", "speed/images per second"} <= set(tags["scalars"])
    grids = events.Images("samples (fixed noise)")
    assert [g.step for g in grids] == [4, 8] and grids[0].width == 4 * 66 + 2  # 16 images of 64 px, 4 per row
    # the config as HPARAMS (dotted keys), with the final losses as its metrics
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(5e-4)
    assert start.hparams["loss.name"].string_value == "bce" and start.hparams["batch_size"].number_value == 16
    final = events.Scalars("final/loss_D")
    assert len(final) == 1 and final[0].value == pytest.approx(csv_losses[-1], abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("logger,files", [("none", set()), ("csv", {"metrics.csv", "losses.png"}),
                                          ("tensorboard", {"tensorboard"})])
def test_the_logger_group_chooses_the_sinks(tmp_path, logger, files):
    train_config(tiny_conf(f"logger={logger}"), tmp_path, show_progress=False)
    written = {p.name for p in tmp_path.iterdir()} & {"metrics.csv", "losses.png", "tensorboard"}
    assert written == files
    assert (tmp_path / "samples" / "epoch_001.png").is_file() and (tmp_path / "checkpoints" / "generator.pt").is_file()


@pytest.mark.slow
def test_network_snapshots_are_small_sampleable_and_apart_from_the_training_state(tmp_path):
    train_config(tiny_conf("epochs=4", "checkpoint.snapshot_every=2", "train.ema=true"), tmp_path, show_progress=False)
    snapshots = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snapshots == ["generator-epoch_002.pt", "generator-epoch_004.pt"]
    snap, last = tmp_path / "snapshots" / snapshots[-1], tmp_path / "checkpoints" / "last.pt"
    assert snap.stat().st_size * 3 < last.stat().st_size  # no optimizers, no D
    weights = load_state(snap)["state_dict"]
    ema = load_state(last)["generator_ema"]
    assert all(torch.equal(weights[k], ema[k].float()) for k in weights)  # the EMA weights, as the export has
    generator = load_generator(snap, torch.device("cpu")).network
    assert generator(torch.randn(2, generator.nz)).shape == (2, 3, 64, 64)


@pytest.mark.slow
def test_jobs_of_one_sweep_leak_nothing_into_the_next(tmp_path):
    """The same job twice in one process gives the same run twice, and the second job's
    log holds only its own lines (a leaked handler would write the first job's log too)."""
    sweep = tmp_path / "sweep"
    run_cli("animegan-train", ["-m", *TINY, "seed=3,3", f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=True)
    first, second = sweep / "0", sweep / "1"
    _assert_same_weights(first / "checkpoints" / "last.pt", second / "checkpoints" / "last.pt")
    assert _rows(first) == _rows(second)
    assert str(first) not in (second / "train.log").read_text()
    assert (first / "train.log").read_text().count("exported to") == 1
    with open(sweep / "multirun.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["completed", "completed"]


def test_the_run_s_time_left_follows_its_pace():
    from animegan.loop import time_left

    assert time_left(0.0, 0, 100) == "?"  # no step yet: no pace
    assert time_left(60.0, 10, 100) == "10:00"  # 6 s a step, 100 steps to go
    assert time_left(3600.0, 1000, 25040 - 1000) == "24:02:24"
    assert time_left(5.0, 10, 0) == "00:00"


def test_the_epoch_line_says_the_run_s_time_left(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="animegan")
    train_config(tiny_conf("epochs=2"), tmp_path, show_progress=False)
    lines = [r.getMessage() for r in caplog.records if " done in " in r.getMessage()]
    assert len(lines) == 2
    assert re.search(r"\| the run's time left (\d+:)?\d\d:\d\d$", lines[0]), lines[0]  # 1 of 2 epochs: half to go
    assert "time left" not in lines[1]  # the last epoch: nothing left
