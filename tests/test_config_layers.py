"""Each default lives in one place: the schema (animegan.config.RunConfig) holds a key's
default, and a YAML file holds only what it changes. A key that a file sets to the value
the config already has without that file is noise that hides the real defaults (and goes
stale when the default moves): these tests name it.

"Without the file" means: for a group's option (dataset/, model/, loss/, optimizer/,
logger/) the schema's default; for a file laid over the groups (dataset_model/,
optimizer_loss/, recipe/, experiment/) the config composed with the same choices but
without it, for every choice of the groups the file leaves free. A key passes when it
changes the config in at least one of them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import animegan
from animegan.compose import compose_config
from animegan.config import RunConfig

CONFIGS = Path(animegan.__file__).parent / "configs"
if not (CONFIGS / "train.yaml").is_file():  # editable install: the configs live at the repository root
    CONFIGS = Path(__file__).parents[1] / "configs"
GROUPS = ("dataset", "model", "optimizer", "loss", "logger")
FOLDER_ROOT = "dataset.root=/faces"  # folder presets compose without a root; it is never read here


def options(group: str):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def free_options(group: str):
    """The choices a free group is tried with: every option, but for the dataset the built-in
    faces and a folder (each preset is a folder with keys of its own, which no overlay repeats)."""
    return ["synthetic", "folder"] if group == "dataset" else options(group)


def leaves(node, prefix=""):
    """(dotted key, value) of every value a YAML file sets (a list is one value)."""
    for key, value in node.items():
        if key in ("defaults", "hydra"):
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from leaves(value, dotted + ".")
        else:
            yield dotted, value


def file_keys(path: Path):
    """The keys a config file sets, at the place they land in the composed config."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    package = "" if "@package _global_" in path.read_text() else f"{path.parent.name}."
    return list(leaves(raw, package))


SCHEMA = OmegaConf.structured(RunConfig)


def schema_default(key: str):
    value = OmegaConf.select(SCHEMA, key, throw_on_missing=False)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def value(cfg, key: str):
    found = OmegaConf.select(cfg, key, throw_on_missing=False)
    return OmegaConf.to_container(found, resolve=False) if OmegaConf.is_config(found) else found


def group_files():
    return [(group, option) for group in GROUPS for option in options(group)]


@pytest.mark.parametrize("group,option", group_files())
def test_a_group_option_sets_only_what_differs_from_the_schema(group, option):
    """A group's option composes straight onto the schema: a key equal to the schema's
    default says nothing. The option's own `name` is kept: it says which file this is."""
    path = CONFIGS / group / f"{option}.yaml"
    repeated = [key for key, v in file_keys(path) if key != f"{group}.name" and v == schema_default(key)]
    assert not repeated, f"{path.relative_to(CONFIGS)} repeats the schema's default of {repeated}; remove them"


def test_the_primary_config_sets_no_key_the_schema_holds():
    assert not list(file_keys(CONFIGS / "train.yaml")), "train.yaml holds only the defaults list and Hydra's section"


def overlay_cases():
    """(file, the overrides that compose the config without it, the groups it leaves free)."""
    cases = []
    overlays = sorted((CONFIGS / "dataset_model").glob("*.yaml")) + sorted((CONFIGS / "optimizer_loss").glob("*.yaml"))
    for path in overlays:
        first, second = ("dataset", "model") if path.parent.name == "dataset_model" else ("optimizer", "loss")
        a, b = next((x, y) for x in options(first) for y in options(second) if f"{x}_{y}" == path.stem)
        free = ("optimizer", "loss") if first == "dataset" else ("dataset", "model")
        cases.append((path, [f"{first}={a}", f"{second}={b}", f"~{path.parent.name}"], free))  # ~: without it
    for path in sorted((CONFIGS / "experiment").glob("*.yaml")):
        defaults = OmegaConf.load(path).get("defaults", [])
        fixed = [f"{k.split('/')[-1]}={v}" for entry in defaults if not isinstance(entry, str)
                 for k, v in entry.items() if k.startswith("override /")]
        recipe = [f"+recipe={v}" for entry in defaults if not isinstance(entry, str)
                  for k, v in entry.items() if k == "/recipe"]
        # the dataset is what users swap (experiment=oulu dataset=folder dataset.root=...): always free
        fixed = [f for f in fixed if not f.startswith("dataset=")]
        free = tuple(g for g in ("dataset", "model", "optimizer", "loss")
                     if not any(f.startswith(g + "=") for f in fixed))
        cases.append((path, fixed + recipe, free))
    for path in sorted((CONFIGS / "recipe").glob("*.yaml")):
        cases.append((path, [], ("dataset",)))  # not in the defaults list: "without" is the plain config
    return cases


@pytest.mark.slow  # about 60 composes
@pytest.mark.parametrize("path,below_choices,free", overlay_cases(),
                         ids=lambda x: str(x.relative_to(CONFIGS)) if isinstance(x, Path) else "")
def test_a_file_over_the_groups_sets_only_what_it_changes(path, below_choices, free):
    keys = file_keys(path)
    needed = set()
    for choice in itertools.product(*[free_options(g) for g in free]):
        chosen = [f"{g}={o}" for g, o in zip(free, choice)]
        below = compose_config([*below_choices, *chosen, FOLDER_ROOT])
        needed |= {key for key, v in keys if value(below, key) != v}
    repeated = [key for key, _ in keys if key not in needed]
    assert not repeated, (f"{path.relative_to(CONFIGS)} sets {repeated} to the value the config has without it "
                          f"(composed with {below_choices} and any of {list(free)}); remove them")
