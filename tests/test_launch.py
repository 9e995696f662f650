"""One launch: every way of starting a run composes and validates its config once, and the
library never imports the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import animegan
from animegan.cli import train as train_cli
from conftest import TINY, call_cli

SRC = Path(animegan.__file__).parent


@pytest.fixture
def counted(monkeypatch):
    """How often Hydra's config loader composed a config, and how often animegan validated one."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    import animegan.config_checks
    import animegan.plan

    counts = {"compose": 0, "validate": 0}
    load, validate = ConfigLoaderImpl.load_configuration, animegan.config_checks.validate

    def counting_load(self, *args, **kwargs):
        counts["compose"] += 1
        return load(self, *args, **kwargs)

    def counting_validate(cfg):
        counts["validate"] += 1
        return validate(cfg)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counting_load)
    for module in (animegan.config_checks, animegan.plan, animegan.compose):
        monkeypatch.setattr(module, "validate", counting_validate)
    return counts


def test_a_command_line_run_composes_and_validates_its_config_once(tmp_path, counted):
    result = call_cli(train_cli.main, [*TINY, "output.sample_every=0", f"hydra.run.dir={tmp_path / 'run'}"],
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert counted == {"compose": 1, "validate": 1}
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()  # Hydra's record, from that one compose
    assert (tmp_path / "run" / "train.log").read_text().count("exported to") == 1


def test_train_from_python_composes_and_validates_once(tmp_path, counted, monkeypatch):
    monkeypatch.chdir(tmp_path)
    animegan.train([*TINY, "output.sample_every=0"], show_progress=False)
    assert counted == {"compose": 1, "validate": 1}


def test_a_sweep_job_composes_nothing_beyond_hydra(tmp_path, counted, monkeypatch):
    """Hydra composes each job of a sweep; the job itself (planning, launching, training)
    adds no compose of its own."""
    import animegan.plan

    at_job_start = []
    plan_job = animegan.plan.plan_job

    def recording(*args, **kwargs):
        at_job_start.append(dict(counted))
        return plan_job(*args, **kwargs)

    monkeypatch.setattr(animegan.plan, "plan_job", recording)
    result = call_cli(train_cli.main, ["-m", *TINY, "output.sample_every=0", "seed=1,2",
                                       f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(at_job_start) == 2
    assert at_job_start[1]["compose"] - at_job_start[0]["compose"] == 1  # Hydra's compose of job 2, nothing else
    assert counted["compose"] == at_job_start[1]["compose"]  # and nothing after it
    assert at_job_start[1]["validate"] - at_job_start[0]["validate"] == 1  # each job validated once


def _imports(path: Path, top_level_only: bool):
    """The animegan modules `path` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("animegan"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("animegan"))
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_library_never_imports_the_command_line():
    library = [p for p in SRC.rglob("*.py") if "cli" not in p.relative_to(SRC).parts and p.name != "__main__.py"]
    assert len(library) > 20
    offenders = {_module_name(p): sorted(m for m in _imports(p, top_level_only=False) if m.startswith("animegan.cli"))
                 for p in library}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_module_level_imports_have_no_cycle():
    graph = {_module_name(p): _imports(p, top_level_only=True) for p in SRC.rglob("*.py")}
    assert graph["animegan.launch"] >= {"animegan.plan", "animegan.run"}  # the graph is read
    done, stack = set(), []

    def visit(module):  # depth first; a module met again on the current path closes a cycle
        if module in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(module):] + [module]))
        if module in done or module not in graph:
            return
        stack.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        stack.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_a_run_started_with_a_hydra_flag_fails_like_a_run_not_like_a_sweep_job(tmp_path):
    """Hydra's own flags (here --config-dir) hand the run to Hydra's application: a bad
    config there still exits with status 2, and no sweep record is written."""
    (tmp_path / "mine").mkdir()
    run = tmp_path / "run"
    result = call_cli(train_cli.main, ["--config-dir", str(tmp_path / "mine"), "batch_size=0",
                                       f"hydra.run.dir={run}"], cwd=tmp_path)
    assert result.returncode == 2 and "batch_size" in result.stdout + result.stderr
    assert not (run / "job_status.json").exists()
