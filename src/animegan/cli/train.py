"""`animegan-train`: compose the Hydra config, check it, and call run_training.

Before Hydra starts (and makes a run directory), every config the command would run
(each combination of a -m sweep) is composed and validated, so a typo fails at once with
one line. Resuming points Hydra at the checkpoint's own run directory.
"""

from __future__ import annotations

import itertools
import logging
import sys
from pathlib import Path
from typing import List

import hydra
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from animegan.checkpoint import load_training_state
from animegan.cli import fail
from animegan.cli.local_configs import register_local_configs
from animegan.config import TrainConfig, validate
from animegan.errors import AnimeganError

CONFIG_MODULE = "animegan.configs"
MAX_CHECKED_SWEEP_JOBS = 256
NOT_REAPPLIED = ("resume", "hydra", "experiment")  # override keys not re-applied over a resumed config


def main() -> None:
    argv = sys.argv[1:]
    register_local_configs()
    try:
        extra = preflight(argv)
    except AnimeganError as exc:
        fail("animegan-train", exc)
    sys.argv = [sys.argv[0], *argv, *extra]
    _hydra_main()


@hydra.main(version_base="1.3", config_path="pkg://animegan.configs", config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    from animegan.run import run_training  # torch import kept off the --help path

    log = logging.getLogger("animegan")
    hydra_cfg = HydraConfig.get()
    try:
        conf = resolve_config(cfg, list(hydra_cfg.overrides.task))
        run_training(conf, Path(hydra_cfg.runtime.output_dir))
    except AnimeganError as exc:
        log.error("%s", exc)
        raise SystemExit(2)
    except KeyboardInterrupt:
        log.error("interrupted; continue with: animegan-train resume=%s/checkpoints/last.pt", hydra_cfg.runtime.output_dir)
        raise SystemExit(130)


def preflight(argv: List[str]) -> List[str]:
    """Validate every job the command line describes; return extra Hydra overrides."""
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return []  # --help, --cfg, --info ...: Hydra's own flags, nothing to train
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise AnimeganError(str(exc).splitlines()[0]) from None

    # Expand sweeps (a=1,2 b=x,y) into their jobs, as Hydra's basic sweeper does.
    choices = []
    for o in parsed:
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        choices.append([f"{key}={v}" for v in values])
    jobs = list(itertools.product(*choices))
    if len(jobs) > 1 and not multirun:
        raise AnimeganError("a sweep (a=1,2) needs multirun: add -m, e.g. animegan-train -m optimizer.lr=1e-4,2e-4")

    confs = [resolve_config(compose_config(list(job)), list(job)) for job in jobs[:MAX_CHECKED_SWEEP_JOBS]]
    if multirun or not confs[0].resume or any(a.startswith("hydra.run.dir=") for a in overrides):
        return []
    resume = Path(confs[0].resume).resolve()
    if resume.parent.name != "checkpoints":
        return []  # a checkpoint outside a run directory: the resumed run gets a new one
    # Continue in the same run directory; keep its original .hydra/ and record this launch beside it.
    return [f"hydra.run.dir='{resume.parent.parent}'", "hydra.output_subdir=.hydra/resume"]


def compose_config(overrides: List[str]) -> DictConfig:
    """Compose the config Hydra would give the job, turning composition errors into one line."""
    user_overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    register_local_configs()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name="train", overrides=user_overrides)
    except MissingConfigException as exc:
        missing = (exc.missing_cfg_file or "").rstrip("/")
        group, _, name = missing.rpartition("/")
        options = ", ".join(exc.options or [])
        if group and options:
            raise AnimeganError(f"unknown {group} '{name}'; available: {options}") from None
        raise AnimeganError(str(exc).splitlines()[0]) from None
    except (HydraException, OmegaConfBaseException) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        cause = exc.__cause__
        text = " ".join(lines[:1] + ([str(cause).splitlines()[0]] if cause and str(cause) else []))
        if "not in struct" in text or "Could not append" in text or "Could not override" in text:
            key = text.split("'")[1] if "'" in text else "?"
            raise AnimeganError(f"config key '{key}' is unknown; see `animegan-train --cfg job` for the keys") from None
        raise AnimeganError(text or type(exc).__name__) from None


def resolve_config(cfg: DictConfig, overrides: List[str]) -> TrainConfig:
    """Validate a composed config. With resume=PATH the checkpoint's own config is the base
    and only keys named on the command line (e.g. epochs=60) change it."""
    conf = validate(cfg)
    if not conf.resume:
        return conf
    saved = with_named_overrides(load_training_state(Path(conf.resume))["config"], cfg, overrides)
    saved.resume = conf.resume
    return validate(saved)


def with_named_overrides(saved: dict, cfg: DictConfig, overrides: List[str]) -> DictConfig:
    """A checkpoint's config with the keys named on the command line taken from `cfg`
    (the composed config of that command line); every other key keeps its saved value."""
    out = OmegaConf.create(saved)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0].split("/")[0] not in NOT_REAPPLIED:
            OmegaConf.update(out, key, OmegaConf.select(cfg, key), merge=False)
    return out
