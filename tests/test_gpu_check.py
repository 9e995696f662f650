"""scripts/gpu_check.py, the command a lent GPU runs, runs on the CPU too (tiny), so that it
cannot rot between loans; asking for CUDA where there is none fails at once, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


@pytest.mark.slow
def test_every_check_passes_tiny_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    table = (tmp_path / "gpu_check.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    names = [r.split("|")[1].strip() for r in rows]
    assert len(rows) == 12 and all("| ok |" in r for r in rows), table
    for precision in ("fp32", "bf16", "fp16"):
        assert f"train {precision}, channels_last true" in names and f"train {precision}, channels_last false" in names
    assert "weights bit-identical" in table and "gloo" in table and "64 faces in" in table
    assert len(list(tmp_path.glob("grid-*.png"))) == 6 and (tmp_path / "afg-64.png").is_file()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_fails_at_once_naming_the_check(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "failed: environment" in result.stderr
    table = (tmp_path / "gpu_check.md").read_text()
    assert "PyTorch sees no CUDA GPU" in table and table.count("| skipped |") == 11
