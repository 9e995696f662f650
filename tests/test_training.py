"""A tiny run writes every artefact; resume continues exactly, also after kill -9."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from animegan.artefacts import LOSS_COLUMNS, METRIC_COLUMNS
from animegan.checkpoint import GENERATOR_FORMAT, TRAINING_FORMAT
from animegan.cli import train as train_cli
from animegan.losses import build_loss
from animegan.models import build_pair
from animegan.optimizers import build_optimizers
from animegan.precision import LossScaling
from animegan.step import StepParts
from animegan.launch import train_config
from conftest import BIN, TINY, call_cli, load_state, run_cli, run_steps, tiny_conf


def _rows(run_dir: Path):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_weights(a: Path, b: Path):
    sa, sb = load_state(a), load_state(b)
    for net in ("generator", "discriminator", "opt_g", "opt_d"):
        flat_a, flat_b = _tensors(sa[net]), _tensors(sb[net])
        assert flat_a.keys() == flat_b.keys()
        for key in flat_a:
            assert torch.equal(flat_a[key], flat_b[key]), f"{net} {key} differs"
    assert (sa["epoch"], sa["step"]) == (sb["epoch"], sb["step"])


def _tensors(tree, prefix=""):
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_tensors(v, f"{prefix}{k}."))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(_tensors(v, f"{prefix}{i}."))
    elif isinstance(tree, torch.Tensor):
        out[prefix] = tree
    return out


@pytest.mark.slow
def test_tiny_run_writes_every_artefact(tmp_path):
    conf = tiny_conf("epochs=2", "checkpoint.keep_every=1")
    export = train_config(conf, tmp_path, show_progress=False).export
    assert export == tmp_path / "checkpoints" / "generator.pt"

    rows = _rows(tmp_path)
    assert tuple(rows[0].keys()) == METRIC_COLUMNS
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # 64 images / batch 16 = 4 steps x 2 epochs
    assert {r["epoch"] for r in rows} == {"1", "2"}

    for epoch in (1, 2):
        grid = Image.open(tmp_path / "samples" / f"epoch_{epoch:03d}.png")
        assert grid.size == (4 * 66 + 2, 4 * 66 + 2)  # 16 images of 64 px, 4 per row, 2 px padding
    assert Image.open(tmp_path / "losses.png").size[0] > 400

    last = load_state(tmp_path / "checkpoints" / "last.pt")
    assert last["format"] == TRAINING_FORMAT and last["epoch"] == 2 and last["step"] == 8
    assert set(last) >= {"generator", "discriminator", "opt_g", "opt_d", "rng", "config", "version", "fixed_noise"}
    assert last["config"]["model"]["ngf"] == 8
    assert (tmp_path / "checkpoints" / "epoch_001.pt").is_file()
    gen = load_state(export)
    assert gen["format"] == GENERATOR_FORMAT and gen["model"]["image_size"] == 64
    assert not list(tmp_path.rglob(".*.tmp-*"))  # no temp files left behind


@pytest.mark.slow
def test_training_moves_the_weights_and_losses_stay_finite(tmp_path):
    conf = tiny_conf("train.d_steps=2", "train.g_steps=2", "train.ema=false")
    torch.manual_seed(conf.seed)  # as run_training does before it builds the networks
    initial = dict(zip(("generator", "discriminator"), (m.state_dict() for m in build_pair(conf.model))))
    train_config(conf, tmp_path, show_progress=False)
    rows = _rows(tmp_path)
    assert all(torch.isfinite(torch.tensor([float(r[k]) for k in LOSS_COLUMNS])).all() for r in rows)
    last = load_state(tmp_path / "checkpoints" / "last.pt")
    for net in ("generator", "discriminator"):
        weights = [k for k in initial[net] if k.endswith("weight")]
        assert weights and all(not torch.equal(initial[net][k], last[net][k]) for k in weights), net


def test_the_logged_d_outputs_are_the_mean_probabilities_on_real_and_fake_batches():
    """D_x and D_G_z (the step's metrics 2 and 3, logged as metrics.csv's columns): the mean
    sigmoid of D's logits on the step's real batch and on its fakes, from D's first forward
    of each in the step (before its update)."""
    conf = tiny_conf("train.instance_noise=0", "train.precision=fp32")
    torch.manual_seed(0)
    generator, discriminator = build_pair(conf.model)
    opt_g, opt_d = build_optimizers(conf.optimizer, generator, discriminator)
    logits = []
    discriminator.register_forward_hook(lambda module, args, out: logits.append(out.detach()))
    images = torch.randint(0, 256, (32, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    parts = StepParts(generator, discriminator, opt_g, opt_d, build_loss("bce"), LossScaling(torch.device("cpu"), False),
                      torch.Generator().manual_seed(2), nz=conf.model.nz)
    rows = run_steps(parts, images, 16).tolist()
    assert len(rows) == 2 and len(logits) == 2 * 3  # per step: D on real, on fakes (D update), on fakes (G update)
    for k, row in enumerate(rows):
        real, fake = logits[3 * k], logits[3 * k + 1]
        assert row[2] == pytest.approx(torch.sigmoid(real).mean().item(), abs=1e-6)
        assert row[3] == pytest.approx(torch.sigmoid(fake).mean().item(), abs=1e-6)
    assert rows[0][2] != rows[0][3]


@pytest.mark.slow
def test_resume_takes_the_checkpoint_config_and_only_named_overrides(tmp_path):
    train_config(tiny_conf("epochs=1", "optimizer.lr=1e-3"), tmp_path, show_progress=False)
    resume = str(tmp_path / "checkpoints" / "last.pt")
    # The default lr (5e-4) is not re-applied: only keys named on the command line change.
    from animegan.compose import compose_config, resolve_config

    conf = resolve_config(compose_config([f"resume={resume}", "epochs=3"]), [f"resume={resume}", "epochs=3"], os.getcwd())
    assert conf.optimizer.lr == 1e-3 and conf.epochs == 3 and conf.model.ngf == 8


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_a_straight_run(tmp_path):
    args = [*TINY, "epochs=2", "dataset.num_images=128", "checkpoint.every_n_steps=1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train_config(tiny_conf(*args), straight, show_progress=False)  # the reference: in this process

    proc = subprocess.Popen([str(BIN / "animegan-train"), *args, f"hydra.run.dir={killed}"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and load_state(last)["step"] >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = load_state(last)  # the file is whole: written atomically
    assert 3 <= state["step"] < 16, "the run finished before it could be killed"

    result = run_cli("animegan-train", [f"resume={last}"], cwd=tmp_path, check=True)
    assert "resuming from" in result.stdout
    _assert_same_weights(straight / "checkpoints" / "last.pt", last)
    assert _rows(straight) == _rows(killed)
    assert (killed / "checkpoints" / "generator.pt").is_file()
    assert (killed / ".hydra" / "resume" / "overrides.yaml").is_file()  # same run dir, first .hydra kept


@pytest.mark.slow
def test_resume_errors_are_one_line(tmp_path):
    train_config(tiny_conf(), tmp_path, show_progress=False)
    gen = tmp_path / "checkpoints" / "generator.pt"
    result = run_cli("animegan-train", [f"resume={gen}"], cwd=tmp_path)
    assert result.returncode == 2 and "generator-only" in result.stderr and "Traceback" not in result.stderr

    last = tmp_path / "checkpoints" / "last.pt"  # main() in this process: the console script is tested above
    result = call_cli(train_cli.main, [f"resume={last}", "model.ngf=16", f"hydra.run.dir={tmp_path / 'x'}"], tmp_path)
    assert result.returncode == 2 and "weights do not fit the model config" in (result.stdout + result.stderr)
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
def test_missing_dataset_folder_is_one_line(tmp_path):
    tiny = [a for a in TINY if not a.startswith("dataset.")]
    result = run_cli("animegan-train", [*tiny, "dataset=anime36k", "dataset.root=/nonexistent/anime36k",
                                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 2
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "/nonexistent/anime36k" in out and "anime36k" in out


@pytest.mark.parametrize("device", ["cuda"])
def test_cuda_request_without_gpu_is_a_clear_error(tmp_path, device):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(Exception, match="no CUDA GPU"):
        train_config(tiny_conf(f"device={device}"), tmp_path, show_progress=False)


@pytest.mark.slow
def test_multirun_from_yaml_and_command_line_gives_one_directory_per_job(tmp_path):
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    (tmp_path / "configs" / "experiment" / "seeds.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      seed: 1,2\n")
    sweep_dir = tmp_path / "sweep"
    result = run_cli("animegan-train", ["-m", *TINY, "experiment=seeds", "optimizer.lr=1e-4,2e-4",
                                        f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, check=True)
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 4, result.stdout
    seen = set()
    for job in jobs:
        conf = load_state(job / "checkpoints" / "last.pt")["config"]
        seen.add((conf["seed"], conf["optimizer"]["lr"]))
        assert (job / "samples" / "epoch_001.png").is_file()
    assert seen == {(1, 1e-4), (1, 2e-4), (2, 1e-4), (2, 2e-4)}
