"""`animegan.train(...)`: a training run from Python (a notebook, a script), with the same
composition, validation, run-directory and lock rules as `animegan-train`.

    import animegan
    result = animegan.train(["epochs=1"])            # the built-in synthetic faces
    animegan.load_generator(result.export).grid(16)  # what it learned

Hydra's compose API builds the config (no Hydra application, no change of directory, no
global logging set-up), so train() can be called again and again in one process: each
call gets its own run directory, its own train.log handler, removed when it returns, and
the same seeds as the command line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Union

from omegaconf import OmegaConf

from animegan.errors import AnimeganError

if TYPE_CHECKING:
    from animegan.run import RunResult

LOG_FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"


def train(overrides: Sequence[str] = (), config_dir: Optional[Union[str, Path]] = None,
          show_progress: bool = True) -> "RunResult":
    """Train as `animegan-train OVERRIDES...` does, and return how the run ended
    (RunResult: run_dir, reason, epoch, step, export = the exported generator's path).

    `overrides`: Hydra overrides as on the command line, e.g. ["dataset=folder",
    "dataset.root=faces", "epochs=5"], `resume=auto` and `hydra.run.dir=...` included
    (without one, the run goes to outputs/<date>/<time> below the current folder).
    `config_dir`: a folder of your own configs (dataset/, model/, experiment/ ...) that
    override or add to the shipped ones, as ./configs does for the command line.
    `show_progress`: the tqdm bar of each epoch. A bad override or config raises
    AnimeganError with a one-line message before anything is written. Sweeps (-m) and
    Hydra's other flags belong to the command line.
    """
    from animegan.cli.compose import compose_config
    from animegan.cli.local_configs import local_configs_from
    from animegan.cli.train import check_writable, given_run_dir, preflight
    from animegan.run import run_training
    from animegan.runlock import holding_run_directory

    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise AnimeganError(f"overrides must be a list of strings such as ['epochs=5'], got {overrides!r}")
    if any(o.startswith("-") for o in overrides):
        raise AnimeganError("train() takes overrides such as 'epochs=5'; sweeps (-m) and Hydra's flags belong to "
                            "the animegan-train command")
    if config_dir is not None and not Path(config_dir).is_dir():
        raise AnimeganError(f"config_dir {config_dir} is not a folder")
    cwd = os.getcwd()
    with local_configs_from(config_dir):
        launch = preflight(list(overrides), cwd)  # the same checks, resume=auto and run-directory rules
        argv = launch.argv
        run_dir = given_run_dir(argv, cwd) or _new_run_dir(compose_config(argv, hydra_config=True), cwd)
        composed = compose_config(argv)
        check_writable(run_dir)
    with holding_run_directory(run_dir), _logging_to(run_dir / "train.log"):
        record = run_dir / (".hydra/resume" if "hydra.output_subdir=.hydra/resume" in argv else ".hydra")
        record.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(composed, record / "config.yaml")
        OmegaConf.save(OmegaConf.create(list(overrides)), record / "overrides.yaml")
        return run_training(launch.conf, run_dir, show_progress=show_progress, plan=launch.plan)


def _new_run_dir(hydra_composed, cwd: str) -> Path:
    """Hydra's time-stamped run directory, made unique: two calls within one second must
    not share a directory (the command line cannot start that fast)."""
    base = Path(cwd, OmegaConf.select(hydra_composed, "hydra.run.dir"))
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The "animegan" logger writes to `path` (train.log) and the console, as under Hydra,
    for the block; it is put back as it was afterwards."""
    logger = logging.getLogger("animegan")
    saved = logger.level, logger.propagate
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S")
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
