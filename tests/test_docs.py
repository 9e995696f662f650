"""The docs say what is so: docs/configuration.md's table of what a plain `animegan-train` runs matches
the composed config, and the docs speak to users (no development machine's paths)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import yaml

from animegan.compose import compose_config, resolve_config
from conftest import config_value

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "checkpoints" / "README.md",
        ROOT / "scripts" / "README.md"]


CONFIGURATION = ROOT / "docs" / "configuration.md"


def _defaults_table(name: str = "effective defaults"):
    """docs/configuration.md's table between `<!-- NAME` and `<!-- end of NAME -->`: {key: value}."""
    text = CONFIGURATION.read_text()
    start = text.index(f"<!-- {name}")
    block = text[start:text.index(f"<!-- end of {name} -->")]
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \| ([^|]+) \|", block, flags=re.M)
    assert len(rows) >= 10, "the table of effective defaults is missing from docs/configuration.md"
    return {key: value.strip() for key, value in rows}


def _mismatches(table: dict, conf) -> dict:
    """{key: (documented, actual)} for every row of `table` that `conf` contradicts."""
    return {k: (v, config_value(conf, k)) for k, v in table.items() if not _same(v, config_value(conf, k))}


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
    wrong = _mismatches(_defaults_table(), conf)
    assert not wrong, f"docs/configuration.md says (documented, actual): {wrong}"


def test_the_readme_shows_the_defaults_of_a_real_folder(tmp_path):
    # what `animegan-train dataset=folder dataset.root=...` (or any real preset) trains
    job = ["dataset=folder", f"dataset.root={tmp_path}"]
    conf = resolve_config(compose_config(job), job, os.getcwd())
    table = _defaults_table("real-data defaults")
    wrong = _mismatches(table, conf)
    assert not wrong, f"docs/configuration.md says (documented, actual): {wrong}"
    preset = compose_config(["dataset=anime36k"])  # a preset gets the same recipe as a folder
    assert not _mismatches({k: v for k, v in table.items() if not k.startswith("dataset.")}, preset)


def test_the_table_lists_every_key_the_default_pairing_changes():
    pairing = yaml.safe_load((ROOT / "configs" / "dataset_model" / "synthetic_dcgan64.yaml").read_text())

    def flat(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    # and Adam's settings, which the default run was searched with (optimizer/adam.yaml)
    missing = {*flat(pairing), "optimizer.lr", "optimizer.betas"} - set(_defaults_table())
    assert not missing, f"the defaults table of docs/configuration.md leaves out {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_carry_no_development_machine_paths(doc):
    # The folders of whatever machine runs the tests: where the checkout lives and the
    # home directory. A user's machine has neither.
    # The system's temporary folder is no machine's own: a checkout made directly in it
    # must not turn the docs' example paths (`--out /tmp/chaos`) into failures.
    text = doc.read_text()
    shared = {"/", os.path.realpath(tempfile.gettempdir()), tempfile.gettempdir()}
    here = {str(ROOT.parent), str(Path.home())} - shared
    assert not [p for p in here if len(p) > 1 and f"{p}/" in text], doc


def test_the_error_the_docs_show_is_the_one_the_command_prints():
    from animegan.cli.train import check_command
    from animegan.errors import AnimeganError

    lines = CONFIGURATION.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "$ animegan-train batch_size=0")
    shown = lines[at + 1].strip()
    with pytest.raises(AnimeganError) as info:
        check_command(["batch_size=0"], os.getcwd())
    assert shown == f"animegan-train: error: {info.value}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_of_the_docs_resolves(doc):
    """[text](target) and ![alt](picture): a file or folder of the repository (anchors and
    web addresses aside)."""
    links = re.findall(r"\]\(([^)\s]+)\)", doc.read_text())
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    missing = [link for link in local if link and not (doc.parent / link).exists()]
    assert not missing, f"{doc.name} links to {missing}"


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move reference material to docs/"
