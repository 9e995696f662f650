"""Composing and checking configs the way `animegan-train` (and -eval, -prepare) see them:
Hydra's compose API over the shipped configs plus a ./configs folder, one-line errors,
the jobs of a sweep, and a resume's config (the checkpoint's, with the keys you name).
The library's own: animegan.plan builds every run from it, the command lines use it too.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Dict, List, Optional

from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

from animegan.local_configs import register_local_configs
from animegan.config import (RunConfig, describe_omegaconf_error, from_checkpoint, register_schema,
                             with_absolute_paths)
from animegan.config_checks import validate
from animegan.errors import AnimeganError

CONFIG_MODULE = "animegan.configs"
NOT_REAPPLIED = ("resume", "hydra", "experiment")  # override keys not re-applied over a resumed config
PLUGINS = {"hydra/sweeper": "optuna", "hydra/launcher": "cluster"}  # plugin config groups -> the extra to install


def sweep_jobs(overrides: List[str], multirun: bool) -> List[List[str]]:
    """The override list of every job, as Hydra's basic sweeper makes them: with -m, the
    sweeper's params from the YAML come first, then the command line (the later value of
    a key wins), and every combination of the swept values is a job."""
    parsed = parse_overrides(overrides)
    if multirun:  # the params live in the composed config: compose it with each sweep's first value
        first = [f"{o.get_key_element()}={_values(o)[0]}" for o in parsed]
        params = OmegaConf.select(compose_config(first, hydra_config=True), "hydra.sweeper.params") or {}
        parsed = parse_overrides([f"{key}={value}" for key, value in params.items()]) + parsed
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


def parse_overrides(overrides: List[str]):
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise AnimeganError(str(exc).splitlines()[0]) from None


def compose_config(overrides: List[str], hydra_config: bool = False) -> DictConfig:
    """Compose the config Hydra would give the job, turning composition errors into one line.
    `hydra_config`: include Hydra's own section (e.g. the sweeper's params) and apply the
    overrides of it (hydra.run.dir=...); without it they are left out."""
    user_overrides = overrides if hydra_config else [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    register_local_configs()
    register_schema()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name="train", overrides=user_overrides, return_hydra_config=hydra_config)
    except MissingConfigException as exc:
        missing = (exc.missing_cfg_file or "").rstrip("/")
        group, _, name = missing.rpartition("/")
        options = ", ".join(exc.options or [])
        if group in PLUGINS:
            raise AnimeganError(f"{group}={name} needs a Hydra plugin that is not installed: "
                                f"pip install 'animegan[{PLUGINS[group]}]' (installed: {options or 'none'})") from None
        if group and options:
            raise AnimeganError(f"unknown {group} '{name}'; available: {options}") from None
        raise AnimeganError(str(exc).splitlines()[0]) from None
    except (HydraException, OmegaConfBaseException, ValueError, TypeError) as exc:  # Hydra raises all of these
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


def resolve_config(cfg: DictConfig, overrides: List[str], cwd: str, state: Optional[dict] = None) -> RunConfig:
    """Validate a composed config, with its relative paths made absolute against `cwd`; a
    resume's is the checkpoint's config with the keys named now (resumed_config)."""
    conf = with_absolute_paths(validate(cfg), cwd)
    return resumed_config(conf, cfg, overrides, cwd, state) if conf.resume else conf


def resumed_config(conf: RunConfig, cfg: DictConfig, overrides: List[str], cwd: str,
                   state: Optional[dict] = None) -> RunConfig:
    """With resume=PATH the checkpoint's own config is the base and only keys named on the
    command line (e.g. epochs=60) change it. `conf`: the validated command line `cfg`;
    `state`: the checkpoint, when it is loaded already (a ResumePlan's)."""
    # torch comes in with a checkpoint: a config without one (or a refused one) never imports it
    from animegan.checkpoint import load_training_state
    from animegan.models.weight_shapes import check_weights_fit
    from animegan.resume import check_data_order, data_order, saved_data_order

    state = load_training_state(Path(conf.resume)) if state is None else state
    try:
        saved = with_named_overrides(state["config"], cfg, overrides)
        saved.resume, saved.resume_new_order = conf.resume, conf.resume_new_order  # this launch's, never the saved
        resumed = with_absolute_paths(validate(saved), cwd)
        check_weights_fit(resumed.model, state)
    except (AnimeganError, OmegaConfBaseException) as exc:
        raise AnimeganError(f"{conf.resume}: {exc}") from None
    # batch_size, seed, flip now; the images themselves once the run has loaded them (run_training)
    check_data_order(saved_data_order(state), data_order(resumed, None), resumed.resume_new_order, Path(conf.resume))
    return resumed


def with_named_overrides(saved: dict, cfg: DictConfig, overrides: List[str]) -> DictConfig:
    """A checkpoint's config with the keys named on the command line taken from `cfg`
    (the composed config of that command line); every other key keeps its saved value."""
    out = OmegaConf.create(from_checkpoint(saved))
    try:
        for override in overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key.split(".")[0].split("/")[0] not in NOT_REAPPLIED:
                OmegaConf.update(out, key, OmegaConf.select(cfg, key), merge=False)
    except OmegaConfBaseException as exc:  # e.g. ${oc.env:UNSET} named on the command line
        raise AnimeganError(describe_omegaconf_error(exc)) from None
    return out
