"""`animegan.train(...)`: a training run from Python (a notebook, a script), planned and
launched by the same functions as `animegan-train` (animegan.plan, animegan.launch).

    import animegan
    result = animegan.train(["epochs=1"])            # the built-in synthetic faces
    animegan.load_generator(result.export).grid(16)  # what it learned

Hydra's compose API builds the config (no Hydra application, no change of directory, no
global logging set-up), so train() can be called again and again in one process: each
call gets its own run directory, its own train.log handler, removed when it returns, and
the same seeds as the command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

from animegan.errors import AnimeganError

if TYPE_CHECKING:
    from animegan.run import RunResult


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
    from animegan.launch import launch
    from animegan.local_configs import local_configs_from
    from animegan.plan import plan_run

    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise AnimeganError(f"overrides must be a list of strings such as ['epochs=5'], got {overrides!r}")
    if any(o.startswith("-") for o in overrides):
        raise AnimeganError("train() takes overrides such as 'epochs=5'; sweeps (-m) and Hydra's flags belong to "
                            "the animegan-train command")
    if config_dir is not None and not Path(config_dir).is_dir():
        raise AnimeganError(f"config_dir {config_dir} is not a folder")
    with local_configs_from(config_dir):
        plan = plan_run(overrides, os.getcwd())
    return launch(plan, show_progress=show_progress, hydra_logging=False)
