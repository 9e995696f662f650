"""Crash safety: kill -9 inside checkpoint writes and between them, resume=auto,
no torn file, at most one checkpoint interval lost per kill, and the same final weights
as a run that was never interrupted (tests/harness/chaos.py; its long run is in docs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "harness" / "chaos.py"


@pytest.mark.slow
def test_three_kills_including_checkpoint_writes_lose_nothing_but_an_interval(tmp_path):
    # 3 epochs of 8 steps: the time goes to the five processes' start-up, not to training
    result = subprocess.run([sys.executable, str(SCRIPT), "--kills", "3", "--seed", "1", "--epochs", "3",
                             "--out", str(tmp_path), "--json"], capture_output=True, text=True, timeout=600)
    assert result.stdout.strip(), result.stderr  # no report: the script says what failed
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # the kill points follow the run's writes and steps, not the clock: all three land
    assert report["kills"] == 3 and report["finished_early"] == 0, report
    assert report["kills_during_a_checkpoint_write"] >= 2, report  # the first and the third
    assert report["torn_files"] == [] and report["went_back_further"] == []
    assert report["max_steps_lost"] <= report["interval"]
    assert report["final_equals_uninterrupted"], report
    assert result.returncode == 0
