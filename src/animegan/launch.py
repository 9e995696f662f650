"""Set up a planned run and train it.

Each set-up step happens here once, in the order a reader expects: the device, the
process group (several processes under torchrun), the run directory (rank 0's, for
every process), its lock, the .hydra/ record and the train.log handler (Hydra's own
run_job, the way Hydra runs a job), then animegan.run.run_training.

    plan = plan_run(["epochs=5"], os.getcwd())   # animegan.plan
    result = launch(plan)
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from animegan.config import RunConfig
from animegan.device import select_device
from animegan.distributed import ProcessGroup, Ranks, local_device
from animegan.errors import AnimeganError, RunFailed, one_line
from animegan.plan import RunPlan, plan_config
from animegan.run import Interrupted, RunResult, run_training
from animegan.runlock import holding_run_directory

log = logging.getLogger("animegan")
LOG_FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"  # as configs/hydra/job_logging/animegan.yaml


def launch(plan: RunPlan, ranks: Ranks = Ranks(), show_progress: bool = True, hydra_logging: bool = True) -> RunResult:
    """Train the planned run. `ranks`: this process among torchrun's (default: alone).
    `hydra_logging`: let Hydra set up logging as for a command (the console and train.log);
    False keeps the process's logging as it is and adds a train.log handler for the run
    (a notebook)."""
    device = local_device(select_device(plan.conf.device), ranks)
    group = ProcessGroup(ranks)
    group.start(device.type)  # a no-op for one process
    finished = False
    try:
        # Under torchrun each process planned its own time-stamped directory: rank 0's is the run's.
        run_dir = Path(group.broadcast(str(Path(plan.run_dir).absolute()) if ranks.is_main else None))

        def train() -> RunResult:
            try:
                return run_training(plan.conf, run_dir, device, group, plan.resume, show_progress)
            except Interrupted as exc:
                log.error("%s", exc)
                raise
            except (AnimeganError, OSError) as exc:  # OSError: a full disk, a folder that vanished, no permission
                message = one_line(exc if isinstance(exc, AnimeganError)
                                   else f"{exc.strerror or exc} ({exc.filename or ''})")
                log.error("%s", message)
                raise RunFailed(message) from exc

        with holding_run_directory(run_dir, active=ranks.is_main):  # one training per run directory
            if plan.hydra_config is None or not ranks.is_main:  # Hydra recorded it (a sweep's job), or nothing to record
                result = train()
            elif hydra_logging:
                result = _as_hydra_job(plan, train, configure_logging=True)
            else:
                with _logging_to(run_dir / "train.log"):
                    result = _as_hydra_job(plan, train, configure_logging=False)
        finished = True
        return result
    finally:
        group.stop(clean=finished)


def train_config(conf: RunConfig, run_dir: Path, show_progress: bool = True) -> RunResult:
    """Train a validated RunConfig in `run_dir`, without a .hydra/ record (tests, scripts)."""
    return launch(plan_config(conf, run_dir), show_progress=show_progress)


@dataclass
class _JobOutcome:
    """What the run inside Hydra's job returned or raised: raised again outside it, so the
    caller gets the run's own exception (Hydra would add a line of its own to stderr)."""

    result: Optional[RunResult] = None
    error: Optional[Exception] = None


def _as_hydra_job(plan: RunPlan, train: Callable[[], RunResult], configure_logging: bool) -> RunResult:
    """Run `train` as Hydra runs a job: the run directory made, .hydra/{config,hydra,overrides}.yaml
    written (.hydra/resume/ for a continued run), Hydra's callbacks and logging set-up."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    def task(_cfg) -> _JobOutcome:
        try:
            return _JobOutcome(result=train())
        except Exception as exc:  # raised again below, outside Hydra's job
            return _JobOutcome(error=exc)

    callbacks = Callbacks(plan.hydra_config)
    callbacks.on_run_start(config=plan.hydra_config)
    job = run_job(task, plan.hydra_config, job_dir_key="hydra.run.dir", job_subdir_key=None,
                  hydra_context=HydraContext(config_loader=None, callbacks=callbacks),
                  configure_logging=configure_logging)
    callbacks.on_run_end(config=plan.hydra_config)
    outcome: _JobOutcome = job.return_value  # a failure of Hydra's own (writing .hydra/) raises here
    if outcome.error is not None:
        raise outcome.error
    return outcome.result


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The "animegan" logger writes to `path` (train.log) and the console, as under Hydra,
    for the block; it is put back as it was afterwards."""
    logger = logging.getLogger("animegan")
    saved = logger.level, logger.propagate
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(path), logging.StreamHandler(sys.stdout)]
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # once, not again through a handler the notebook set on the root logger
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.level, logger.propagate = saved
