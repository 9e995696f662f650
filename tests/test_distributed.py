"""Several processes under torchrun (gloo on the CPU): one run directory written by rank 0
only, disjoint shards of every batch, the same weights in every process, the same
training as one process at the same global batch, and an exact resume."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import weakref
from pathlib import Path

import pytest
import torch

from animegan.augment import DiffAugment
from animegan.data import ImageBank
from animegan.distributed import ProcessGroup, Ranks, Shard
from animegan.launch import train_config
from conftest import BIN, TINY, load_state, shared_folder, tiny_conf
from test_training import _assert_same_weights, _rows, _tensors

# BatchNorm and the minibatch standard deviation see each process's part of the batch;
# SyncBatchNorm (CUDA only) would make BatchNorm global. Without batch statistics, two
# processes at batch 2B compute what one does.
NO_BATCH_STATISTICS = ["model.g_batchnorm=false", "model.d_batchnorm=false", "model.minibatch_std=false"]


def torchrun(args, cwd: Path, processes: int = 2, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    result = subprocess.run([str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={processes}", "-m",
                             "animegan", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"torchrun {args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


# --- shards (no processes needed) -----------------------------------------------------------------------------------

def test_the_shards_of_a_batch_are_disjoint_and_together_make_the_batch():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    bank = ImageBank(images, flip=True)
    order = bank.epoch_order(seed=0, epoch=0)[:16]
    whole = bank.batch(order, torch.Generator().manual_seed(5))
    halves = [bank.batch(order, torch.Generator().manual_seed(5), shard=Shard(r, 2)) for r in range(2)]
    assert all(h.shape[0] == 8 for h in halves)
    assert torch.equal(torch.cat(halves), whole)  # same images, same flips: the two halves of one batch
    assert not any(torch.equal(a, b) for a in halves[0] for b in halves[1])  # no image in both


def test_random_draws_for_the_global_batch_are_split_not_repeated():
    x = torch.rand(16, 3, 16, 16)
    whole = DiffAugment("color,translation,cutout", torch.Generator().manual_seed(1))(x)
    parts = [DiffAugment("color,translation,cutout", torch.Generator().manual_seed(1), Shard(r, 2))(x[r * 8:(r + 1) * 8])
             for r in range(2)]
    assert torch.allclose(torch.cat(parts), whole, atol=1e-6)


def test_a_stopped_group_leaves_no_reference_to_torchs_process_group(monkeypatch):
    """A process group still referenced after destroy_process_group() is torn down at
    interpreter exit, where gloo's threads can abort the process (it happened at the end of
    2-process runs under load). A group of one process in this one, which the ProcessGroup
    takes for one of two so that every collective runs."""
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    group = ProcessGroup(Ranks(rank=0, world=2, local_rank=0))
    group.start("cpu")
    world = weakref.ref(dist.group.WORLD)
    try:
        assert group.any(True) and not group.any(False) and group.broadcast({"step": 3}) == {"step": 3}
    finally:
        group.stop()
    gc.collect()
    assert not dist.is_initialized() and world() is None


# --- whole runs under torchrun --------------------------------------------------------------------------------------

TWO_PROCESS_RUN = [*TINY, "epochs=2", "train.diffaugment=[translation]"]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """One run under torchrun into Hydra's default run directory (outputs/DATE/TIME):
    the run two tests look at (its files, and the straight run a resume must equal)."""
    def make(cwd: Path):
        cwd.mkdir()
        (cwd / "stdout.txt").write_text(torchrun(TWO_PROCESS_RUN, cwd=cwd).stdout)

    cwd = shared_folder(tmp_path_factory, "two-process-run", make)
    return (cwd / "stdout.txt").read_text(), list((cwd / "outputs").glob("*/*"))


@pytest.mark.slow
def test_two_processes_write_one_run_directory_from_rank_0(two_process_run):
    stdout, runs = two_process_run
    assert len(runs) == 1, runs  # both processes agreed on one directory
    run = runs[0]
    log = (run / "train.log").read_text()
    assert log.count("| 2 processes |") == 1  # one writer
    assert "all 2 processes hold the same weights" in log
    assert (run / ".hydra" / "config.yaml").is_file() and load_state(run / "checkpoints" / "last.pt")["step"] == 8
    assert [int(r["step"]) for r in _rows(run)] == list(range(1, 9))  # one metrics row per step, not per process
    assert stdout.count("exported to") == 1


@pytest.mark.slow
def test_two_processes_at_batch_2b_train_as_one_process_at_batch_2b(tmp_path):
    args = [*TINY, *NO_BATCH_STATISTICS, "epochs=2", "train.precision=fp32", "train.diffaugment=[color,translation]",
            "train.instance_noise=0.2", "loss.r1_gamma=1.0"]
    train_config(tiny_conf(*args), tmp_path / "one", show_progress=False)  # one process: this one
    torchrun([*args, f"hydra.run.dir={tmp_path / 'two'}"], cwd=tmp_path)
    one, two = (load_state(tmp_path / d / "checkpoints" / "last.pt") for d in ("one", "two"))
    for net in ("generator", "discriminator"):
        a, b = _tensors(one[net]), _tensors(two[net])
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst < 1e-4, (net, worst)  # the same steps; sums in another order only
    rows_one, rows_two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    for r1, r2 in zip(rows_one, rows_two):
        assert float(r1["loss_D"]) == pytest.approx(float(r2["loss_D"]), abs=1e-4)


@pytest.mark.slow
def test_resume_under_two_processes_is_exact(tmp_path, two_process_run):
    straight = two_process_run[1][0]
    torchrun([*TWO_PROCESS_RUN, "epochs=1", f"hydra.run.dir={tmp_path / 'split'}"], cwd=tmp_path)
    torchrun([f"resume={tmp_path / 'split' / 'checkpoints' / 'last.pt'}", "epochs=2"], cwd=tmp_path)
    _assert_same_weights(straight / "checkpoints" / "last.pt", tmp_path / "split" / "checkpoints" / "last.pt")
    assert _rows(straight) == _rows(tmp_path / "split")


@pytest.mark.slow
def test_a_global_batch_that_does_not_split_evenly_is_one_line(tmp_path):
    result = torchrun([*TINY, "batch_size=15", "dataset.num_images=64"], cwd=tmp_path, check=False)
    assert result.returncode != 0
    message = "batch_size=15 is the global batch and must split evenly over the 2 processes"
    # rank 0's console: exactly that one line (the other rank's goes to stderr, once)
    assert [line for line in result.stdout.splitlines() if line.strip()] == [
        next(line for line in result.stdout.splitlines() if message in line)]
    assert result.stderr.count(message) == 1
    # torchrun's own agent prints a traceback of its launcher when a process fails; none
    # passes through animegan's code
    frames = [line for line in result.stderr.splitlines() if line.strip().startswith('File "')]
    assert not [f for f in frames if f"{os.sep}animegan{os.sep}" in f], frames
