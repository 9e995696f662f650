"""Sweeps (-m): a failing job ends only itself, the sweep ends with one table of every job
(printed and multirun.csv), the exit status says whether any failed, and values swept in
YAML are checked before the first job trains."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import TINY, run_cli

from animegan.compose import sweep_jobs
from animegan.cli.train import check_command


def _experiment(tmp_path, name: str, params: str) -> None:
    """./configs/experiment/<name>.yaml holding a sweep: `params` lines of hydra.sweeper.params."""
    (tmp_path / "configs" / "experiment").mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs" / "experiment" / f"{name}.yaml").write_text(
        f"# @package _global_\nhydra:\n  sweeper:\n    params:\n      {params}\n")


def _table(sweep_dir):
    with open(sweep_dir / "multirun.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_failing_job_ends_alone_and_the_sweep_reports_every_job(tmp_path):
    sweep = tmp_path / "sweep"
    # 8 images cannot fill one batch of 16: that job fails when it loads its data, after validation.
    result = run_cli("animegan-train", ["-m", *TINY, "dataset.num_images=8,64", "seed=1,2", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    rows = _table(sweep)
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    by_overrides = {r["overrides"]: r for r in rows}
    for seed in (1, 2):
        failed = by_overrides[f"dataset.num_images=8 seed={seed}"]
        assert failed["status"] == "failed" and "fewer than batch_size=16" in failed["error"]
        assert failed["steps"] == "0"
        done = by_overrides[f"dataset.num_images=64 seed={seed}"]
        assert done["status"] == "completed" and done["steps"] == "4" and done["error"] == ""
        assert float(done["loss_D"]) > 0 and done["epoch"] == "1"
        assert (sweep / done["job"] / "checkpoints" / "generator.pt").is_file()
    assert "sweep: 2 of 4 jobs completed" in result.stdout
    table_lines = [ln for ln in result.stdout.splitlines() if ln.startswith(("job ", "0 ", "1 ", "2 ", "3 "))]
    assert len(table_lines) == 5  # header + 4 jobs


@pytest.mark.slow
def test_a_sweep_of_good_jobs_exits_zero_with_its_table(tmp_path):
    _experiment(tmp_path, "seeds", "seed: 1,2")
    sweep = tmp_path / "sweep"
    result = run_cli("animegan-train", ["-m", *TINY, "experiment=seeds", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table(sweep)
    assert sorted(r["overrides"] for r in rows) == ["seed=1", "seed=2"]  # the keys that differ between jobs
    assert all(r["status"] == "completed" and r["steps"] == "4" for r in rows)


@pytest.mark.slow
def test_sweep_values_in_yaml_are_validated_before_any_job_trains(tmp_path):
    _experiment(tmp_path, "bad", "train.g_steps: 1,0")
    sweep = tmp_path / "sweep"
    result = run_cli("animegan-train", ["-m", *TINY, "experiment=bad", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'train.g_steps' = 0 is invalid" in lines[0]
    assert not sweep.exists()  # not even the first job started


@pytest.mark.slow
def test_the_command_line_wins_over_the_yaml_sweep_for_the_same_key(tmp_path):
    _experiment(tmp_path, "bad", "train.g_steps: 0,1")
    sweep = tmp_path / "sweep"
    # train.g_steps=2 on the command line replaces the YAML's 0,1, as Hydra's basic sweeper does.
    result = run_cli("animegan-train", ["-m", *TINY, "experiment=bad", "train.g_steps=2", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table(sweep)
    assert len(rows) == 1 and "train.g_steps=2" in rows[0]["overrides"]


SEARCH = Path(__file__).resolve().parents[1] / "scripts" / "studies" / "search"


@pytest.mark.slow
@pytest.mark.parametrize("sweep", sorted(p.stem for p in (SEARCH / "configs" / "experiment").glob("*.yaml")))
def test_every_committed_search_sweep_validates_every_job(sweep, monkeypatch, tmp_path):
    # The searches in scripts/studies/search are run from that folder (its configs/ adds the candidates);
    # a candidate file that is missing or sets a wrong key must fail here, not hours into a sweep.
    monkeypatch.chdir(SEARCH)
    data = [] if sweep.startswith("search_default") else ["dataset=folder", f"dataset.root={tmp_path}"]
    check_command(["-m", f"experiment={sweep}", *data], str(SEARCH))
    jobs = sweep_jobs([f"experiment={sweep}", *data], multirun=True)
    candidates = {c.stem for c in (SEARCH / "configs" / "candidate").glob("*.yaml")}
    named = {o.split("=", 1)[1] for job in jobs for o in job if o.startswith("+candidate=")}
    assert len(jobs) >= 2 and named and named <= candidates
