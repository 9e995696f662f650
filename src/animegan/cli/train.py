"""`animegan-train`: compose the Hydra config, check it, and call run_training.

Before Hydra starts (and makes a run directory), every config the command would run
(each combination of a -m sweep, the sweeper's YAML params included) is composed and
validated, so a typo fails at once with one line. Resuming from a run's newest state
points Hydra at that run's directory; from an older state the resumed run branches into
a new directory (animegan.resume).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import hydra
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

from animegan.checkpoint import load_training_state
from animegan.cli import fail
from animegan.cli.local_configs import register_local_configs
from animegan.cli.sweep_report import JOB_STATUS
from animegan.config import (TrainConfig, describe_omegaconf_error, from_checkpoint, register_schema, validate,
                             with_absolute_paths)
from animegan.errors import AnimeganError
from animegan.files import atomic_replace
from animegan.resume import check_data_order, data_order, is_newest_state, run_dir_of, saved_data_order

CONFIG_MODULE = "animegan.configs"
MAX_CHECKED_SWEEP_JOBS = 256
NOT_REAPPLIED = ("resume", "hydra", "experiment")  # override keys not re-applied over a resumed config


def main() -> None:
    argv = sys.argv[1:]
    register_local_configs()
    register_schema()
    try:
        extra = preflight(argv, os.getcwd())
    except AnimeganError as exc:
        fail("animegan-train", exc)
    if not torchrun_environment(os.environ):
        sys.argv = [sys.argv[0], *argv, *extra]
        _hydra_main()
        return
    from animegan.distributed import ProcessGroup, Ranks  # torch: kept off the --help path

    ranks = Ranks.from_environment(os.environ)
    try:
        extra += one_run_directory(argv, extra, ranks)
    except AnimeganError as exc:
        fail("animegan-train", exc)
    sys.argv = [sys.argv[0], *argv, *extra]
    try:
        _hydra_main()
    finally:
        ProcessGroup(ranks).stop()


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
    try:
        conf = resolve_config(cfg, overrides, os.getcwd())
        result = run_training(conf, run_dir, group=ProcessGroup(ranks))
    except Interrupted as exc:
        log.error("%s", exc)
        if in_sweep:
            write_job_status(run_dir, overrides, "interrupted", str(exc))
        raise SystemExit(exc.exit_status)  # a signal ends a sweep too: the cluster wants the node back
    except AnimeganError as exc:
        log.error("%s", exc)
        if not in_sweep:
            raise SystemExit(2)
        write_job_status(run_dir, overrides, "failed", str(exc))
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


def one_run_directory(argv: List[str], extra: List[str], ranks) -> List[str]:
    """Under torchrun every process would make its own time-stamped run directory: rank 0
    chooses one and tells the others. Only rank 0 writes Hydra's files and train.log.
    Also starts the processes' group (NCCL on CUDA, gloo on the CPU)."""
    from animegan.distributed import ProcessGroup
    from animegan.run import select_device

    if any(a in ("-m", "--multirun") for a in argv):
        raise AnimeganError("a sweep (-m) runs its jobs one after another; under torchrun start each job on its own")
    composed = compose_config(argv, hydra_config=True)
    given = [a.split("=", 1)[1].strip("'\"") for a in [*argv, *extra] if a.startswith("hydra.run.dir=")]
    run_dir = given[-1] if given else OmegaConf.select(composed, "hydra.run.dir")
    group = ProcessGroup(ranks)
    group.start(select_device(str(composed.device)).type)
    run_dir = group.broadcast(os.path.abspath(run_dir) if ranks.is_main else None)
    quiet = [] if ranks.is_main else ["hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"]
    return [f"hydra.run.dir='{run_dir}'", *quiet]


def preflight(argv: List[str], cwd: str) -> List[str]:
    """Validate every job the command line describes (each combination of a sweep, the
    sweeper's YAML params included); return extra Hydra overrides."""
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return []  # --help, --cfg, --info ...: Hydra's own flags, nothing to train
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    jobs = sweep_jobs(overrides, multirun)
    if len(jobs) > 1 and not multirun:
        raise AnimeganError("a sweep (a=1,2) needs multirun: add -m, e.g. animegan-train -m optimizer.lr=1e-4,2e-4")

    confs = [resolve_config(compose_config(job), job, cwd) for job in jobs[:MAX_CHECKED_SWEEP_JOBS]]
    if any(c.device.startswith("cuda") for c in confs):
        from animegan.run import select_device  # imports torch: only when a GPU is asked for

        for device in sorted({c.device for c in confs}):
            select_device(device)
    if multirun or not confs[0].resume or any(a.startswith("hydra.run.dir=") for a in overrides):
        return []
    resume = Path(confs[0].resume)
    if not is_newest_state(resume, int(load_training_state(resume)["step"])):
        return []  # an older state, or one outside a run directory: the resumed run branches into a new one
    # Continue in the same run directory; keep its original .hydra/ and record this launch beside it.
    return [f"hydra.run.dir='{run_dir_of(resume)}'", "hydra.output_subdir=.hydra/resume"]


def sweep_jobs(overrides: List[str], multirun: bool) -> List[List[str]]:
    """The override list of every job, as Hydra's basic sweeper makes them: with -m, the
    sweeper's params from the YAML come first, then the command line (the later value of
    a key wins), and every combination of the swept values is a job."""
    parsed = _parse(overrides)
    if multirun:  # the params live in the composed config: compose it with each sweep's first value
        first = [f"{o.get_key_element()}={_values(o)[0]}" for o in parsed]
        params = OmegaConf.select(compose_config(first, hydra_config=True), "hydra.sweeper.params") or {}
        parsed = _parse([f"{key}={value}" for key, value in params.items()]) + parsed
    choices: Dict[str, List[str]] = {key: [f"{key}={v}" for v in _values(o)] for o in parsed
                                     for key in [o.get_key_element()]}
    return [list(job) for job in itertools.product(*choices.values())]


def _values(o) -> List[str]:
    """The values an override takes: one, each of a list sweep (a=1,2, choice(1,2), range(1,3)),
    or both ends of an interval (the Optuna sweeper's interval(1e-4, 1e-3): every value
    between is valid when both ends are)."""
    if not o.is_sweep_override():
        return [o.get_value_element_as_str()]
    if o.is_interval_sweep():
        return [str(o.value().start), str(o.value().end)]
    return list(o.sweep_string_iterator())


def _parse(overrides: List[str]):
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise AnimeganError(str(exc).splitlines()[0]) from None


def compose_config(overrides: List[str], hydra_config: bool = False) -> DictConfig:
    """Compose the config Hydra would give the job, turning composition errors into one line.
    `hydra_config`: include Hydra's own section (e.g. the sweeper's params)."""
    user_overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    register_local_configs()
    register_schema()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name="train", overrides=user_overrides, return_hydra_config=hydra_config)
    except MissingConfigException as exc:
        missing = (exc.missing_cfg_file or "").rstrip("/")
        group, _, name = missing.rpartition("/")
        options = ", ".join(exc.options or [])
        if group and options:
            raise AnimeganError(f"unknown {group} '{name}'; available: {options}") from None
        raise AnimeganError(str(exc).splitlines()[0]) from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise AnimeganError(explain_compose_error(exc)) from None


def explain_compose_error(exc: Exception) -> str:
    """One line for an error Hydra or OmegaConf raised while composing."""
    text = str(exc)
    cause = exc.__cause__
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):  # a value of the wrong type
        return describe_omegaconf_error(cause)
    full = [ln.split("full_key:", 1)[1].strip() for ln in (text + "\n" + str(cause or "")).splitlines()
            if "full_key:" in ln]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    unknown = ("not in struct", "Could not append", "Could not override", "not in '")
    if any(u in text or u in str(cause or "") for u in unknown):
        key = full[0] if full else (text.split("'")[1] if "'" in text else "?")
        where = f" (in config file {lines[0].split(chr(39))[1]}.yaml)" if lines and lines[0].startswith("In '") else ""
        return f"config key '{key}' is unknown{where}; see `animegan-train --cfg job` for the keys"
    first = " ".join(lines[:2] if lines and lines[0].endswith(":") else lines[:1])
    return " ".join([first] + ([str(cause).splitlines()[0]] if cause and str(cause) else [])) or type(exc).__name__


def resolve_config(cfg: DictConfig, overrides: List[str], cwd: str) -> TrainConfig:
    """Validate a composed config, with its relative paths made absolute against `cwd`.
    With resume=PATH the checkpoint's own config is the base and only keys named on the
    command line (e.g. epochs=60) change it."""
    conf = with_absolute_paths(validate(cfg), cwd)
    if not conf.resume:
        return conf
    state = load_training_state(Path(conf.resume))
    saved = with_named_overrides(state["config"], cfg, overrides)
    saved.resume, saved.resume_new_order = conf.resume, conf.resume_new_order  # this launch's, never the saved ones
    resumed = with_absolute_paths(validate(saved), cwd)
    # batch_size, seed, flip now; the images themselves once the run has loaded them (run_training)
    check_data_order(saved_data_order(state), data_order(resumed, None), resumed.resume_new_order, Path(conf.resume))
    return resumed


def with_named_overrides(saved: dict, cfg: DictConfig, overrides: List[str]) -> DictConfig:
    """A checkpoint's config with the keys named on the command line taken from `cfg`
    (the composed config of that command line); every other key keeps its saved value."""
    out = OmegaConf.create(from_checkpoint(saved))
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0].split("/")[0] not in NOT_REAPPLIED:
            OmegaConf.update(out, key, OmegaConf.select(cfg, key), merge=False)
    return out


def write_job_status(run_dir: Path, overrides: List[str], status: str, error: str = "", result=None) -> None:
    """<job dir>/job_status.json: what the sweep report reads for this job."""
    record = {"overrides": overrides, "status": status, "error": error}
    if result is not None:
        record.update(epoch=result.epoch, steps=result.step, stopped=result.reason.value, final=result.final,
                      best_fid=result.best_fid)
    with atomic_replace(run_dir / JOB_STATUS) as tmp:
        tmp.write_text(json.dumps(record) + "\n")
