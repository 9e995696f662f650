"""animegan-sample, through the installed console script, from both checkpoint kinds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from animegan.cli import sample as sample_cli
from animegan.launch import train_config
from animegan.sampling import generate
from animegan.face_generator import load_generator
from conftest import call_cli, tiny_conf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train_config(tiny_conf(), run_dir, show_progress=False)
    return run_dir / "checkpoints"


@pytest.mark.parametrize("name", ["generator.pt", "last.pt"])
def test_sample_grid_from_either_checkpoint(trained, tmp_path, name):
    out = tmp_path / "grid.png"
    result = call_cli(sample_cli.main, ["--ckpt", str(trained / name), "--n", "12", "--nrow", "4", "--out", str(out),
                                        "--device", "cpu"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    grid = Image.open(out)
    assert grid.size == (4 * 66 + 2, 3 * 66 + 2)
    pixels = torch.from_numpy(np.asarray(grid.convert("L"), dtype=np.float32))
    assert pixels.std() > 5  # not a blank image


def test_both_checkpoint_kinds_give_the_same_faces(trained):
    a = torch.cat(list(generate(load_generator(trained / "generator.pt", torch.device("cpu")).network, 8, seed=3)))
    b = torch.cat(list(generate(load_generator(trained / "last.pt", torch.device("cpu")).network, 8, seed=3)))
    assert torch.equal(a, b)


def test_large_n_is_generated_in_chunks_with_the_same_result(trained):
    g = load_generator(trained / "generator.pt", torch.device("cpu")).network
    chunks = list(generate(g, 300, seed=1, chunk=128))
    assert [len(c) for c in chunks] == [128, 128, 44]
    assert torch.equal(torch.cat(chunks), torch.cat(list(generate(g, 300, seed=1, chunk=300))))


def test_bare_name_is_found_in_checkpoints_and_individual_images_saved(trained, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(trained / "generator.pt", tmp_path / "checkpoints" / "afg.pt")
    assert call_cli(sample_cli.main, ["--ckpt", "afg.pt", "--n", "5", "--save-individual", "faces", "--seed", "7"],
                    tmp_path).returncode == 0
    assert (tmp_path / "checkpoints" / "afg-n5-seed7.png").is_file()  # default: beside the checkpoint
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    assert Image.open(tmp_path / "faces" / "000000.png").size == (64, 64)


@pytest.mark.parametrize(
    "setup,match",
    [
        (lambda d: None, "checkpoint not found"),
        (lambda d: (d / "x.pt").write_text("not a checkpoint"), "not a readable PyTorch checkpoint"),
        (lambda d: torch.save({"weights": torch.zeros(2)}, d / "x.pt"), "not an animegan checkpoint"),
    ],
)
def test_bad_checkpoint_is_one_line(tmp_path, setup, match):
    setup(tmp_path)
    result = call_cli(sample_cli.main, ["--ckpt", str(tmp_path / "x.pt")], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and match in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_more_images_than_a_grid_holds_needs_save_individual(trained, tmp_path):
    result = call_cli(sample_cli.main, ["--ckpt", str(trained / "generator.pt"), "--n", "5000"], tmp_path)
    assert result.returncode == 2 and "--save-individual" in result.stderr
    assert call_cli(sample_cli.main, ["--ckpt", str(trained / "generator.pt"), "--n", "1100", "--batch", "512",
                                      "--save-individual", "all", "--out", "g.png"], tmp_path).returncode == 0
    assert len(list((tmp_path / "all").iterdir())) == 1100
    assert Image.open(tmp_path / "g.png").size == (32 * 66 + 2, 32 * 66 + 2)  # the first 1024 only
