"""The generator shipped with animegan (checkpoints/afg.pt, installed as animegan.checkpoints):
a safe, small file that samples the same faces from any working directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from animegan.checkpoint import GENERATOR_FORMAT, load_checkpoint
from animegan.face_generator import resolve_checkpoint
from animegan.config_checks import validate_model
from animegan.face_generator import load_generator

REPO = Path(__file__).resolve().parents[1]
AFG = REPO / "checkpoints" / "afg.pt"


def test_shipped_generator_is_small_safe_and_valid():
    assert AFG.stat().st_size < 10 * 2**20
    raw = torch.load(AFG, map_location="cpu", weights_only=True)  # plain tensors and data: no code runs
    assert raw["format"] == GENERATOR_FORMAT
    assert {v.dtype for v in raw["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    validate_model(raw["model"], "afg.pt")  # its config is one animegan accepts
    assert raw["model"]["image_size"] == 64
    generator = load_generator(AFG, torch.device("cpu")).network
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in generator.parameters())
    assert str(load_checkpoint(AFG)["config"]["dataset"]["root"]) == "anime-faces-96"  # no path of the machine it was trained on


def _faces(grid_path: Path) -> np.ndarray:
    return np.asarray(Image.open(grid_path).convert("RGB"))


@pytest.mark.slow
def test_bare_name_samples_the_same_distinct_faces_from_any_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    grids = []
    for k in range(2):
        result = run_cli("animegan-sample", ["--ckpt", "afg.pt", "--n", "4", "--seed", "0", "--out", f"g{k}.png"],
                         cwd=elsewhere, timeout=120)
        assert result.returncode == 0, result.stderr
        grids.append(_faces(elsewhere / f"g{k}.png"))
    assert np.array_equal(grids[0], grids[1])
    faces = [grids[0][y:y + 64, x:x + 64].astype(float) for y in (2, 68) for x in (2, 68)]  # 2x2 grid, 2 px padding
    assert min(np.abs(a - b).mean() for i, a in enumerate(faces) for b in faces[i + 1:]) > 10  # four different faces
    assert all(face.std() > 20 for face in faces)  # drawn, not flat colour


@pytest.mark.slow
def test_shipped_grid_without_out_goes_to_outputs_not_into_the_package(tmp_path):
    result = run_cli("animegan-sample", ["--ckpt", "afg.pt", "--n", "4"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "outputs" / "samples" / "afg-n4-seed0.png").is_file()
    assert not list((REPO / "checkpoints").glob("*.png"))


def test_a_users_own_afg_in_checkpoints_wins_over_the_shipped_one(tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    mine = tmp_path / "checkpoints" / "afg.pt"
    mine.write_bytes(AFG.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("afg.pt") == Path("checkpoints") / "afg.pt"
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    assert resolve_checkpoint("afg.pt").resolve() == AFG.resolve()  # no ./checkpoints/ here: the shipped copy
