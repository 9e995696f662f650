"""A training run, planned once before anything is written.

Every way of starting a run makes one RunPlan here and hands it to animegan.launch:

- `animegan-train` (one run, or one process of `torchrun`) and `animegan.train()`:
  plan_run(overrides) composes the config once with Hydra's compose API;
- a job of a sweep (`-m`): Hydra composed its config; plan_job() takes it as it is;
- tests and scripts holding a validated RunConfig: plan_config().

The plan holds the validated config (a resume's: the checkpoint's config with the keys
named now), the run directory and the resume (animegan.resume). Deciding them here, and
nowhere else, is what lets `resume=auto` be the same command for a first start and every
restart.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from animegan.compose import compose_config, parse_overrides, resolve_config, resumed_config
from animegan.config import RunConfig, with_absolute_paths
from animegan.config_checks import validate
from animegan.errors import AnimeganError

if TYPE_CHECKING:
    from animegan.resume import ResumePlan

RESUME_RECORD = ".hydra/resume"  # where a run continued in its own directory records its launch


@dataclass
class RunPlan:
    """What a run is, decided before anything is written; animegan.launch trusts it."""

    conf: RunConfig  # validated, paths absolute; a resume's is the checkpoint's config with the keys named now
    run_dir: Path
    resume: Optional["ResumePlan"] = None  # the checkpoint it continues (loaded once), where from
    # The composed config with Hydra's own section, for the run directory's .hydra/ record
    # and Hydra's logging set-up; None when Hydra did both already (a sweep's job) or for a
    # bare RunConfig (plan_config).
    hydra_config: Optional[DictConfig] = None


def plan_run(overrides: Sequence[str], cwd: str) -> RunPlan:
    """Plan the run `animegan-train OVERRIDES` describes (no sweep, no Hydra flags): compose
    and validate its config, resolve resume=auto, plan the resume and choose the run
    directory: the one named (hydra.run.dir=...), the checkpoint's own for a continued
    run, else a new time-stamped one."""
    overrides = list(overrides)
    named_dir = named_run_dir(overrides, cwd)
    overrides, newest = auto_resume(overrides, named_dir)
    composed = compose_config(overrides, hydra_config=True)
    if named_dir is not None:  # as Hydra resolved it (it may hold ${now:...})
        named_dir = Path(cwd, OmegaConf.select(composed, "hydra.run.dir"))
    job = without_hydra(composed)
    conf = with_absolute_paths(validate(job), cwd)
    resume = None
    if conf.resume:
        from animegan.resume import plan_resume  # loads a checkpoint: torch, only for a resume

        source = Path(conf.resume)
        resume = plan_resume(source, named_dir, newest[1] if newest and newest[0] == source else None)
        conf = resumed_config(conf, job, overrides, cwd, resume.state)
    continued = resume is not None and not resume.branch
    if named_dir is not None:
        run_dir = named_dir
    elif continued:
        run_dir = resume.parent_run
    else:
        run_dir = new_run_dir(composed, cwd)
    check_writable(run_dir)
    with read_write(composed), open_dict(composed):
        composed.hydra.mode = RunMode.RUN  # as Hydra's own single run records it
        composed.hydra.run.dir = str(run_dir)
        if continued and composed.hydra.output_subdir is not None:
            composed.hydra.output_subdir = RESUME_RECORD  # keep the run's original .hydra/ as it was
    return RunPlan(conf, run_dir, resume, composed)


def plan_job(cfg: DictConfig, overrides: List[str], cwd: str, run_dir: Path) -> RunPlan:
    """Plan one job of a sweep from the config Hydra composed for it, in the directory
    Hydra made for it (a resume in a sweep continues the checkpoint in that directory)."""
    conf = resolve_config(cfg, overrides, cwd)
    return RunPlan(conf, Path(run_dir), _plan_resume(conf, run_dir))


def plan_config(conf: RunConfig, run_dir: Path) -> RunPlan:
    """Plan a run of a validated RunConfig in `run_dir` (what tests and scripts hold)."""
    return RunPlan(conf, Path(run_dir), _plan_resume(conf, run_dir))


def _plan_resume(conf: RunConfig, run_dir: Path) -> Optional["ResumePlan"]:
    if not conf.resume:
        return None
    from animegan.resume import plan_resume

    return plan_resume(Path(conf.resume), Path(run_dir))


def without_hydra(composed: DictConfig) -> DictConfig:
    """The job's config: the composed one without Hydra's own section."""
    job = copy.deepcopy(composed)
    with read_write(job), open_dict(job):
        job.pop("hydra", None)
    return job


def auto_resume(overrides: List[str], run_dir: Optional[Path]) -> Tuple[List[str], Optional[Tuple[Path, dict]]]:
    """resume=auto: the newest training state in the run directory that loads (a damaged
    one is skipped and named), or a fresh start when there is none yet; the same command
    starts a run and restarts it after any crash (what a cluster job script wants).
    Returns the overrides with resume=PATH, and (PATH, its contents) for the resume plan."""
    if "resume=auto" not in overrides:
        return overrides, None
    if run_dir is None:
        raise AnimeganError("resume=auto looks for the newest checkpoint in a run directory: name it with "
                            "hydra.run.dir=PATH")
    import logging

    from animegan.resume import find_newest_state  # loads checkpoints: torch, only for resume=auto

    newest, state, damaged = find_newest_state(run_dir)
    for path, reason in damaged:
        logging.getLogger("animegan").warning("skipping %s: %s", path, reason)
    rest = [o for o in overrides if o != "resume=auto"]
    return (rest + [f"resume={newest}"], (newest, state)) if newest else (rest, None)


def named_run_dir(overrides: List[str], cwd: str) -> Optional[Path]:
    """The run directory named on the command line (hydra.run.dir=...), if any."""
    values = [o.value() for o in parse_overrides(overrides) if o.get_key_element() == "hydra.run.dir"]
    return Path(cwd, str(values[-1])) if values else None


def new_run_dir(composed: DictConfig, cwd: str) -> Path:
    """Hydra's time-stamped run directory (hydra.run.dir), made unique: two runs started
    within one second (two calls of animegan.train()) must not share a directory."""
    base = Path(cwd, OmegaConf.select(composed, "hydra.run.dir"))
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def check_writable(run_dir: Path) -> None:
    """Before anything is written: can the run directory be made, and written to?"""
    existing = Path(run_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AnimeganError(f"cannot write the run directory {run_dir}: {existing} is "
                            f"{'not a folder' if not existing.is_dir() else 'not writable'}; choose another "
                            "hydra.run.dir")
