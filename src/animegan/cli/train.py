"""`animegan-train`: compose the Hydra config, check it, and call run_training.

Before Hydra starts (and makes a run directory), every config the command would run
(each combination of a -m sweep, the sweeper's YAML params included) is composed and
validated, so a typo fails at once with one line. Resuming from a run's newest state
points Hydra at that run's directory; from an older state the resumed run branches into
a new directory (animegan.resume).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from animegan.cli import fail
from animegan.cli.compose import compose_config, resolve_config, sweep_jobs
from animegan.cli.local_configs import register_local_configs
from animegan.cli.sweep_report import JOB_STATUS
from animegan.config import register_schema, with_absolute_paths
from animegan.config_checks import validate
from animegan.errors import AnimeganError, one_line
from animegan.files import atomic_replace
from animegan.runlock import lock_run_directory, release_run_directory

if TYPE_CHECKING:
    from animegan.config import RunConfig
    from animegan.resume import ResumePlan

MAX_CHECKED_SWEEP_JOBS = 256
_launch: Optional["Launch"] = None  # main()'s Launch, for the Hydra job it starts (a Hydra task function takes only its config)
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
    global _launch
    try:
        _launch = preflight(argv, os.getcwd())
        argv = _launch.argv
        run_dir = given_run_dir(argv, os.getcwd())
        if run_dir is not None and "-m" not in argv and not torchrun_environment(os.environ):
            lock_run_directory(run_dir)  # before Hydra writes its files there
    except AnimeganError as exc:
        fail("animegan-train", exc)
    if not torchrun_environment(os.environ):
        sys.argv = [sys.argv[0], *argv]
        try:
            _hydra_main()
        finally:
            if run_dir is not None:
                release_run_directory(run_dir)  # and delete its lock file
        return
    from animegan.distributed import ProcessGroup, Ranks  # torch: kept off the --help path

    ranks = Ranks.from_environment(os.environ)
    try:
        argv = [*argv, *one_run_directory(argv, ranks)]
    except AnimeganError as exc:
        fail("animegan-train", exc)
    sys.argv = [sys.argv[0], *argv]
    finished = False
    try:
        _hydra_main()
        finished = True
    finally:
        ProcessGroup(ranks).stop(clean=finished)


@hydra.main(version_base="1.3", config_path="pkg://animegan.configs", config_name="train")
def _hydra_main(cfg: DictConfig) -> Optional[float]:
    """One job; returns its best FID (what hparams_search=optuna minimises; NaN when the
    job failed or did not evaluate). Alone, a failure exits with status 2. Inside a sweep
    (-m) a failure ends only its job: its job_status.json says why, the sweep goes on, and
    the sweep report (animegan.cli.sweep_report) lists every job and sets the exit status."""
    from animegan.distributed import ProcessGroup, Ranks  # torch import kept off the --help path
    from animegan.run import Interrupted, run_training

    log = logging.getLogger("animegan")
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    ranks = Ranks.from_environment(os.environ)
    launch = _launch if _launch is not None and _launch.conf is not None and not in_sweep else None
    try:  # one run: the config and resume plan the command line made; a sweep's job: its own
        conf = launch.conf if launch else resolve_config(cfg, overrides, os.getcwd())
        result = run_training(conf, run_dir, group=ProcessGroup(ranks), plan=launch.plan if launch else None)
    except Interrupted as exc:
        log.error("%s", exc)
        if in_sweep:
            write_job_status(run_dir, overrides, "interrupted", str(exc))
        raise SystemExit(exc.exit_status)  # a signal ends a sweep too: the cluster wants the node back
    except (AnimeganError, OSError) as exc:  # OSError: a full disk, a folder that vanished, no permission
        message = one_line(exc if isinstance(exc, AnimeganError) else f"{exc.strerror or exc} ({exc.filename or ''})")
        log.error("%s", message)
        if not in_sweep:
            raise SystemExit(2)
        write_job_status(run_dir, overrides, "failed", message)
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


def one_run_directory(argv: List[str], ranks) -> List[str]:
    """Under torchrun every process would make its own time-stamped run directory: rank 0
    chooses one and tells the others. Only rank 0 writes Hydra's files and train.log.
    Also starts the processes' group (NCCL on CUDA, gloo on the CPU)."""
    from animegan.distributed import ProcessGroup
    from animegan.device import select_device

    if any(a in ("-m", "--multirun") for a in argv):
        raise AnimeganError("a sweep (-m) runs its jobs one after another; under torchrun start each job on its own")
    composed = compose_config(argv, hydra_config=True)
    run_dir = given_run_dir(argv, os.getcwd()) or OmegaConf.select(composed, "hydra.run.dir")
    group = ProcessGroup(ranks)
    group.start(select_device(str(composed.device)).type)
    run_dir = group.broadcast(os.path.abspath(run_dir) if ranks.is_main else None)
    quiet = [] if ranks.is_main else ["hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"]
    return [f"hydra.run.dir='{run_dir}'", *quiet]


@dataclass
class Launch:
    """What the command line decided before Hydra starts: the arguments Hydra gets and, for
    one run (not a sweep), its validated config and resume plan, which the job then uses
    as they are: the checkpoint is loaded once."""

    argv: List[str]
    conf: Optional[RunConfig] = None
    plan: Optional[ResumePlan] = None


def preflight(argv: List[str], cwd: str) -> Launch:
    """Validate every job the command line describes (each combination of a sweep, the
    sweeper's YAML params included); return the Launch (the arguments Hydra gets, with
    resume=auto made concrete and the run directory of an in-place resume added)."""
    modes = sorted({HYDRA_MODES[a] for a in argv if a in HYDRA_MODES})
    if len(modes) > 1:
        raise AnimeganError(f"{' and '.join(modes)} cannot be combined: give one of them (to see one job's config "
                            "of a sweep, drop -m and give one value per option)")
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return Launch(argv)  # --help, --cfg, --info ...: Hydra's own flags, nothing to train
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides, newest = auto_resume([a for a in argv if a not in ("-m", "--multirun")], cwd)
    argv = (["-m"] if multirun else []) + overrides
    jobs = sweep_jobs(overrides, multirun)
    if len(jobs) > 1 and not multirun:
        raise AnimeganError("a sweep (a=1,2) needs multirun: add -m, e.g. animegan-train -m optimizer.lr=1e-4,2e-4")

    run_dir = given_run_dir(overrides, cwd)
    plan = None
    if not multirun:  # one run: a resume is planned here, from one load of its checkpoint
        cfg = compose_config(jobs[0])
        resume = with_absolute_paths(validate(cfg), cwd).resume
        if resume:
            from animegan.resume import plan_resume  # loads a checkpoint: torch, only for a resume

            plan = plan_resume(Path(resume), run_dir, newest[1] if newest and newest[0] == Path(resume) else None)
        confs = [resolve_config(cfg, jobs[0], cwd, plan.state if plan else None)]
    else:
        confs = [resolve_config(compose_config(job), job, cwd) for job in jobs[:MAX_CHECKED_SWEEP_JOBS]]
    sweeper = str(OmegaConf.select(compose_config(jobs[0], hydra_config=True), "hydra.sweeper._target_") or "") \
        if multirun else ""
    if "optuna" in sweeper.lower() and not all(c.eval.every_n_epochs for c in confs):
        raise AnimeganError("hparams_search=optuna minimises each trial's best FID, so every trial must evaluate it: "
                            "set eval.every_n_epochs (e.g. eval.every_n_epochs=${epochs})")
    if any(c.device.startswith("cuda") for c in confs):
        from animegan.device import select_device  # imports torch: only when a GPU is asked for

        for device in sorted({c.device for c in confs}):
            select_device(device)
    if run_dir is not None and not multirun:
        check_writable(run_dir)
    if multirun:
        return Launch(argv)
    if plan is None:
        return Launch(argv, confs[0])
    if run_dir is None:
        if plan.branch:
            return Launch(argv, confs[0], plan)  # an older state, or one outside a run directory: a new directory
        run_dir = plan.parent_run
        check_writable(run_dir)
        argv = [*argv, f"hydra.run.dir='{run_dir}'"]
    if not plan.branch:
        # Continue in the same run directory; keep its original .hydra/ and record this launch beside it.
        argv = [*argv, "hydra.output_subdir=.hydra/resume"]
    return Launch(argv, confs[0], plan)


def auto_resume(overrides: List[str], cwd: str) -> Tuple[List[str], Optional[Tuple[Path, dict]]]:
    """resume=auto: the newest training state in the run directory that loads (a damaged
    one is skipped and named), or a fresh start when there is none yet; the same command
    starts a run and restarts it after any crash (what a cluster job script wants).
    Returns the overrides with resume=PATH, and (PATH, its contents) for the resume plan."""
    if "resume=auto" not in overrides:
        return overrides, None
    run_dir = given_run_dir(overrides, cwd)
    if run_dir is None:
        raise AnimeganError("resume=auto looks for the newest checkpoint in a run directory: name it with "
                            "hydra.run.dir=PATH")
    from animegan.resume import find_newest_state  # loads checkpoints: torch, only for resume=auto

    newest, state, damaged = find_newest_state(run_dir)
    for path, reason in damaged:
        print(f"animegan-train: skipping {path}: {reason}", file=sys.stderr)
    rest = [o for o in overrides if o != "resume=auto"]
    return (rest + [f"resume={newest}"], (newest, state)) if newest else (rest, None)


def given_run_dir(overrides: List[str], cwd: str) -> Optional[Path]:
    values = [o.split("=", 1)[1].strip("'\"") for o in overrides if o.startswith("hydra.run.dir=")]
    return Path(cwd, values[-1]) if values else None


def check_writable(run_dir: Path) -> None:
    """Before Hydra makes the run directory: can it be made, and written to?"""
    existing = Path(run_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AnimeganError(f"cannot write the run directory {run_dir}: {existing} is "
                            f"{'not a folder' if not existing.is_dir() else 'not writable'}; choose another "
                            "hydra.run.dir")


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
