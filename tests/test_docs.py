"""The docs say what is so: the README's table of what a plain `animegan-train` runs matches
the composed config, and the docs speak to users (no development machine's paths)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from animegan.cli.compose import compose_config, resolve_config

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "checkpoints" / "README.md"]


def _defaults_table():
    text = README.read_text()
    start = text.index("<!-- effective defaults")
    block = text[start:text.index("<!-- end of effective defaults -->")]
    rows = re.findall(r"^\| `([a-z_.]+)` \| ([^|]+) \|", block, flags=re.M)
    assert len(rows) >= 10, "the table of effective defaults is missing from the README"
    return {key: value.strip() for key, value in rows}


def _value(conf, dotted):
    node = conf
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _same(documented: str, actual) -> bool:
    if isinstance(actual, bool):
        return documented == str(actual).lower()
    if isinstance(actual, (int, float)):
        return float(documented.replace(",", "")) == float(actual)
    if isinstance(actual, (list, tuple)):  # written as YAML writes a flow list: [color, translation]
        return documented == "[" + ", ".join(str(x) for x in actual) + "]"
    return documented == str(actual)


def test_the_readme_shows_the_effective_defaults_of_a_plain_run():
    conf = resolve_config(compose_config([]), [], os.getcwd())
    table = _defaults_table()
    wrong = {k: (v, _value(conf, k)) for k, v in table.items() if not _same(v, _value(conf, k))}
    assert not wrong, f"README says (documented, actual): {wrong}"


@pytest.mark.parametrize("pairing", ["dataset_model/synthetic_dcgan64", "dataset_model_optimizer/synthetic_dcgan64_adam"])
def test_the_table_lists_every_key_the_default_pairing_changes(pairing):
    pairing = yaml.safe_load((ROOT / "configs" / f"{pairing}.yaml").read_text())

    def flat(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    missing = set(flat(pairing)) - set(_defaults_table())
    assert not missing, f"the README's defaults table leaves out {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_carry_no_development_machine_paths(doc):
    # The folders of whatever machine runs the tests: where the checkout lives and the
    # home directory. A user's machine has neither.
    text = doc.read_text()
    here = {str(ROOT.parent), str(Path.home())}
    assert not [p for p in here if len(p) > 1 and f"{p}/" in text], doc


def test_the_error_the_readme_shows_is_the_one_the_command_prints():
    from animegan.cli.train import preflight
    from animegan.errors import AnimeganError

    lines = README.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "$ animegan-train batch_size=0")
    shown = lines[at + 1].strip()
    with pytest.raises(AnimeganError) as info:
        preflight(["batch_size=0"], os.getcwd())
    assert shown == f"animegan-train: error: {info.value}"
