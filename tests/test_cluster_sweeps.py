"""Sweeps beyond the basic sweeper in one process: Hydra's submitit launcher (each job a
separate process, as a SLURM job array would run them) and an Optuna study over the runs'
best FID (with the stand-in feature extractor)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import yaml

from conftest import STANDIN, TINY, load_state, run_cli

# The plugins come with the dev install (animegan[cluster,optuna]): one that stops importing
# fails these tests at collection instead of skipping them.
import hydra_plugins.hydra_optuna_sweeper  # noqa: F401,E402
import hydra_plugins.hydra_submitit_launcher  # noqa: F401,E402


def _table(sweep: Path):
    with open(sweep / "multirun.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_submitit_local_sweep_runs_each_job_as_its_own_process(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("animegan-train", ["-m", "hydra/launcher=submitit_local", *TINY, "seed=1,2",
                                        f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table(sweep)
    assert sorted(r["overrides"] for r in rows) == ["seed=1", "seed=2"]
    assert all(r["status"] == "completed" and r["steps"] == "4" for r in rows)
    assert (sweep / ".submitit").is_dir()  # submitit's own job records
    seeds = {load_state(sweep / r["job"] / "checkpoints" / "last.pt")["config"]["seed"] for r in rows}
    assert seeds == {1, 2}


@pytest.mark.slow
def test_a_two_trial_optuna_study_minimises_the_best_fid(tmp_path):
    sweep = tmp_path / "sweep"
    site = Path(__file__).parent / "standin_site"
    env_path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    args = ["-m", "hparams_search=optuna", *TINY, "epochs=2", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.n_startup_trials=2", f"eval.feature_extractor={STANDIN}",
            f"eval.stats_dir={tmp_path / 'stats'}", "eval.n=32", "eval.kid_subset_size=16", "eval.kid_subsets=5",
            f"hydra.sweep.dir={sweep}"]
    result = run_cli("animegan-train", args, cwd=tmp_path, timeout=600, env={"PYTHONPATH": env_path})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table(sweep)
    assert len(rows) == 2 and all(r["status"] == "completed" and r["best_fid"] for r in rows)
    lrs = {load_state(sweep / r["job"] / "checkpoints" / "last.pt")["config"]["optimizer"]["lr_g"] for r in rows}
    assert len(lrs) == 2  # the sampler chose the trials' parameters
    found = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert found["best_value"] == pytest.approx(min(float(r["best_fid"]) for r in rows), abs=0.01)


@pytest.mark.slow
def test_optuna_without_fid_is_refused_before_any_trial(tmp_path):
    result = run_cli("animegan-train", ["-m", "hparams_search=optuna", *TINY, "eval.every_n_epochs=0",
                                        f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 2 and "eval.every_n_epochs" in result.stderr
    assert not (tmp_path / "sweep").exists()
