"""scripts/studies/score_runs.py's collapse measure: a generator that draws one face for every
latent scores a closest pair of 0; an untrained one, whose faces differ, does not."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from animegan.checkpoint import generator_export, save_checkpoint
from animegan.models import build_generator
from conftest import tiny_conf

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "studies" / "score_runs.py"


@pytest.fixture(scope="module")
def score_runs():
    spec = importlib.util.spec_from_file_location("score_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(tmp_path: Path, collapse: bool) -> Path:
    conf = tiny_conf()
    torch.manual_seed(0)
    generator = build_generator(conf.model)
    if collapse:
        first = next(m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d))
        torch.nn.init.zeros_(first.weight)  # z no longer reaches the image: one face for every latent
    path = tmp_path / f"generator-{collapse}.pt"
    save_checkpoint(generator_export(generator, asdict(conf.model), epochs=1, config={}, step=1), path)
    return path


def test_copies_of_one_face_have_a_closest_pair_of_zero(tmp_path, score_runs):
    closest, median = score_runs.pair_distances(score_runs.faces_of(export(tmp_path, collapse=True), n=16))
    assert closest == pytest.approx(0, abs=1e-6) and median == pytest.approx(0, abs=1e-6)


def test_distinct_faces_keep_their_pairs_apart(tmp_path, score_runs):
    closest, median = score_runs.pair_distances(score_runs.faces_of(export(tmp_path, collapse=False), n=16))
    assert 0 < closest <= median < 1
