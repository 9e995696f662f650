"""`animegan-train`: one run, a sweep (-m), or one process of torchrun.

One run (and each torchrun process) is planned by animegan.plan.plan_run, which composes
and checks the config once before anything is written, and trained by
animegan.launch.launch, as animegan.train() does. A sweep is Hydra's: every job it will
run is composed and checked first (each combination, the sweeper's YAML params included),
so a typo fails at once with one line; then Hydra's sweeper and launcher run the jobs,
each planned from the config Hydra composed for it (plan_job).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from animegan.cli import fail
from animegan.cli.sweep_report import JOB_STATUS
from animegan.compose import compose_config, resolve_config, sweep_jobs
from animegan.config import register_schema
from animegan.errors import AnimeganError, RunFailed, one_line
from animegan.files import atomic_replace
from animegan.local_configs import register_local_configs

if TYPE_CHECKING:
    from animegan.plan import RunPlan

MAX_CHECKED_SWEEP_JOBS = 256
# Hydra's flags that choose what the command does; Hydra allows one (several: its own traceback)
HYDRA_MODES = {"-m": "--multirun", "--multirun": "--multirun", "-r": "--run", "--run": "--run", "-c": "--cfg",
               "--cfg": "--cfg", "--info": "--info", "-i": "--info", "-sc": "--shell-completion",
               "--shell-completion": "--shell-completion"}


def main(argv: Optional[List[str]] = None) -> None:
    """The console script (argv: the command line after the program's name)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # A log line that cannot reach train.log (a full disk) is dropped, not a traceback on
    # the console: the write that fails next reports the full disk in one line.
    logging.raiseExceptions = False
    register_local_configs()
    register_schema()
    try:
        plan = check_command(argv, os.getcwd())
        if plan is not None:
            return train_one(plan)
    except AnimeganError as exc:
        fail("animegan-train", exc)
    sys.argv = [sys.argv[0], *argv]
    _hydra_main()  # a sweep, or Hydra's own flags (--help, --cfg, --info ...)


def check_command(argv: List[str], cwd: str) -> Optional["RunPlan"]:
    """Everything the command checks before any work: for one run (also each torchrun
    process), its plan; for a sweep, every job's config (None); Hydra's flags: nothing."""
    modes = sorted({HYDRA_MODES[a] for a in argv if a in HYDRA_MODES})
    if len(modes) > 1:
        raise AnimeganError(f"{' and '.join(modes)} cannot be combined: give one of them (to see one job's config "
                            "of a sweep, drop -m and give one value per option)")
    if any(a.startswith("-") and a not in ("-m", "--multirun", "-r", "--run") for a in argv):
        return None  # --help, --cfg, --info ...: Hydra answers them
    overrides = [a for a in argv if a not in HYDRA_MODES]
    if modes == ["--multirun"]:
        if torchrun_environment(os.environ):
            raise AnimeganError("a sweep (-m) runs its jobs one after another; under torchrun start each job on "
                                "its own")
        check_sweep(overrides, cwd)
        return None
    if len(sweep_jobs(overrides, multirun=False)) > 1:
        raise AnimeganError("a sweep (a=1,2) needs multirun: add -m, e.g. animegan-train -m optimizer.lr=1e-4,2e-4")
    from animegan.plan import plan_run  # a resume loads a checkpoint: torch, kept off the --help path

    return plan_run(overrides, cwd)


def train_one(plan: "RunPlan") -> None:
    """One run (or this process's part of a torchrun run)."""
    from animegan.distributed import Ranks
    from animegan.launch import launch
    from animegan.run import Interrupted

    ranks = Ranks.from_environment(os.environ)
    try:
        launch(plan, ranks)
    except Interrupted as exc:  # logged by the run: the console and train.log
        raise SystemExit(exc.exit_status)
    except RunFailed:  # logged by the run
        raise SystemExit(2)
    if ranks.distributed:
        # The run is finished and its group torn down; what is left of gloo's threads can still
        # abort the interpreter's own teardown ("terminate called without an active
        # exception", seen under load), which torchrun would report as a failed run. Nothing
        # is left to write: flush and leave without that teardown.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def check_sweep(overrides: List[str], cwd: str) -> None:
    """Compose and validate every job of a sweep (each combination, the sweeper's YAML
    params included) before Hydra starts any."""
    if "resume=auto" in overrides:
        raise AnimeganError("resume=auto continues one run in its hydra.run.dir; resume the jobs of a sweep one by one, "
                            "each with its own run directory")
    jobs = sweep_jobs(overrides, multirun=True)
    confs = [resolve_config(compose_config(job), job, cwd) for job in jobs[:MAX_CHECKED_SWEEP_JOBS]]
    sweeper = str(OmegaConf.select(compose_config(jobs[0], hydra_config=True), "hydra.sweeper._target_") or "")
    if "optuna" in sweeper.lower() and not all(c.eval.every_n_epochs for c in confs):
        raise AnimeganError("hparams_search=optuna minimises each trial's best FID, so every trial must evaluate it: "
                            "set eval.every_n_epochs (e.g. eval.every_n_epochs=${epochs})")


@hydra.main(version_base="1.3", config_path="pkg://animegan.configs", config_name="train")
def _hydra_main(cfg: DictConfig) -> Optional[float]:
    """One job of a sweep (or a run started with Hydra's own flags, e.g. --config-dir);
    returns its best FID (what hparams_search=optuna minimises; NaN when the job failed or
    did not evaluate). In a sweep a failure ends only its job: its job_status.json says
    why, the sweep goes on, and the sweep report (animegan.cli.sweep_report) lists every
    job and sets the exit status. Alone, a failure exits with status 2."""
    from hydra.types import RunMode

    from animegan.launch import launch  # torch import kept off the --help path
    from animegan.plan import plan_job
    from animegan.run import Interrupted

    log = logging.getLogger("animegan")
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        result = launch(plan_job(cfg, overrides, os.getcwd(), run_dir))
    except Interrupted as exc:  # logged by the run
        if in_sweep:
            write_job_status(run_dir, overrides, "interrupted", str(exc))
        raise SystemExit(exc.exit_status)  # a signal ends a sweep too: the cluster wants the node back
    except AnimeganError as exc:  # RunFailed: logged by the run; the others ended it before it started
        if not isinstance(exc, RunFailed):
            log.error("%s", one_line(exc))
        if not in_sweep:
            raise SystemExit(2)
        write_job_status(run_dir, overrides, "failed", one_line(exc))
        return float("nan")
    except Exception as exc:  # a bug: the whole traceback goes to this job's log, the sweep goes on
        if not in_sweep:
            raise
        log.exception("job failed")
        write_job_status(run_dir, overrides, "failed", f"{type(exc).__name__}: {exc}".splitlines()[0])
        return float("nan")
    finally:
        release_job_resources()
    if in_sweep:
        write_job_status(run_dir, overrides, "completed", result=result)
    return result.best_fid if result.best_fid is not None else float("nan")


def release_job_resources() -> None:
    """What one job must not leave to the next job of a sweep run in the same process:
    cached GPU memory, torch.compile's caches, cuDNN's benchmark flag. (Logging handlers
    are replaced by Hydra for every job; TensorBoard writers are closed by the run.)"""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = False
    if "torch._dynamo" in sys.modules:
        torch._dynamo.reset()


def torchrun_environment(env) -> bool:
    """True in a process that torchrun started as one of several."""
    return int(env.get("WORLD_SIZE", 1)) > 1 and "MASTER_ADDR" in env


def write_job_status(run_dir: Path, overrides: List[str], status: str, error: str = "", result=None) -> None:
    """<job dir>/job_status.json: what the sweep report reads for this job."""
    record = {"overrides": overrides, "status": status, "error": error}
    if result is not None:
        record.update(epoch=result.epoch, steps=result.step, stopped=result.reason.value, final=result.final,
                      best_fid=result.best_fid)
    try:
        with atomic_replace(run_dir / JOB_STATUS) as tmp:
            tmp.write_text(json.dumps(record) + "\n")
    except AnimeganError as exc:  # a full disk: the sweep report lists this job without a status
        logging.getLogger("animegan").error("%s", exc)
