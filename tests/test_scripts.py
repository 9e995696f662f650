"""The measuring scripts run on tiny settings, so that a change in how runs are built breaks
them here, loudly, instead of silently when someone next measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "bench"


@pytest.mark.slow
def test_the_benchmark_times_the_classic_example_and_the_real_data_default(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPTS / "benchmark.py"), "--tiny", "--n-images", "48", "--batch",
                             "16", "--steps", "2", "--warmup", "1", "--rounds", "1", "--device", "cpu"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("baseline", "animegan")}
    assert set(rows) == {"baseline", "animegan"}, result.stdout
    assert all(float(row[1]) > 0 for row in rows.values())  # images/s
    # the default as the README's command trains it: R1 and the average included
    assert "R1 every 4 steps" in " ".join(rows["animegan"]) and "EMA" in " ".join(rows["animegan"])
    assert "ratio animegan / baseline" in result.stdout


@pytest.mark.slow
def test_the_preparation_benchmark_reports_every_row(tmp_path):
    from conftest import image_folder

    faces = image_folder(tmp_path / "faces", 40, size=48)
    result = subprocess.run([sys.executable, str(SCRIPTS / "bench_prepare.py"), "--root", str(faces), "--size", "32",
                             "--cache-dir", str(tmp_path / "cache"), "--batch-size", "8", "--steps", "2", "--tiny",
                             "--workers", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = dict(line.split("  ", 1) for line in result.stdout.splitlines() if "  " in line)
    assert "prepare (fresh build)" in rows and rows["kept / dropped"].strip().startswith("40 / ")
    assert "ms at batch 8" in rows["train step (CPU)"] and "%" in rows["data share of an epoch"]


@pytest.mark.slow
def test_the_start_up_profile_finds_every_phase(tmp_path):
    """Each phase is named as an importable function: one that moves breaks the script, and
    the phases a one-step run goes through take time in the profile."""
    result = subprocess.run([sys.executable, str(SCRIPTS / "profile_startup.py"), "--ngf", "8", "--ndf", "8",
                             "--repeats", "1", "--work", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    seconds = {line[:45].strip(): float(line[45:].split()[0]) for line in result.stdout.splitlines()
               if len(line) > 46 and line[45:].split() and line[45:].split()[0].replace(".", "", 1).isdigit()}
    import importlib.util

    spec = importlib.util.spec_from_file_location("profile_startup", SCRIPTS / "profile_startup.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert {label for label, _ in script.PHASES} <= set(seconds), result.stdout  # a row for every phase
    # the phases that take more than the table's 0.01 s resolution even with tiny nets
    for phase in ("config: compose, validate, resume plan", "data: cache check and load",
                  "models, optimisers, EMA: build", "training steps (the first one included)"):
        assert seconds[phase] > 0, (phase, result.stdout)


@pytest.mark.slow
def test_the_colour_statistics_compare_each_generator_with_the_real_faces(tmp_path):
    from animegan.launch import train_config
    from conftest import image_folder, tiny_conf

    faces = image_folder(tmp_path / "faces", n=8, size=64)
    train_config(tiny_conf("output.sample_every=0"), tmp_path / "run", show_progress=False)
    result = subprocess.run([sys.executable, str(SCRIPTS.parent / "studies" / "colour_stats.py"), "--ref", str(faces),
                             "--n", "8", str(tmp_path / "run" / "checkpoints" / "generator.pt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert [r.split()[0] for r in rows] == ["real", "generator.pt"] and all("contrast 0." in r for r in rows)
