"""The anime-domain FD32/FD64 of `animegan-eval --metric anime-fd`: the real network of the
anime-or-not package on pictures the tests make, a few dozen at most."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image, ImageFilter

from animegan import anime_fd
from animegan.cli import eval as eval_cli
from animegan.errors import AnimeganError
from animegan.launch import train_config
from conftest import call_cli, face_picture, image_folder, tiny_conf


def pictures(seeds, blur: float = 0.0) -> np.ndarray:
    out = []
    for s in seeds:
        im = face_picture(s, 64)
        if blur:
            im = im.filter(ImageFilter.GaussianBlur(blur))
        out.append(np.asarray(im).transpose(2, 0, 1))
    return np.stack(out)


@pytest.fixture(scope="module")
def network():
    return anime_fd.AnimeFeatures(threads=1)


@pytest.mark.slow
def test_a_set_is_at_distance_zero_from_itself_and_blur_is_far(network):
    a, b = pictures(range(32)), pictures(range(100, 132))
    ref = anime_fd.statistics(a, network)
    same = anime_fd.distances(anime_fd.statistics(a, network), ref)
    other = anime_fd.distances(anime_fd.statistics(b, network), ref)
    blurred = anime_fd.distances(anime_fd.statistics(pictures(range(100, 132), blur=3), network), ref)
    assert same["fd32"] == pytest.approx(0, abs=1e-3) and same["fd64"] == pytest.approx(0, abs=1e-3)
    for k in ("fd32", "fd64"):
        assert 0 < other[k] < blurred[k], k  # more pictures of the same kind are nearer than blurred ones
    assert np.isfinite(list(blurred.values())).all()


@pytest.mark.slow  # loading the network takes seconds
def test_other_sizes_are_brought_to_64_px_first(network):
    small = np.stack([np.asarray(Image.fromarray(x.transpose(1, 2, 0)).resize((32, 32))).transpose(2, 0, 1)
                      for x in pictures(range(3))])
    assert anime_fd.statistics(small, network)["fd64"]["mean"].shape == (512,)


@pytest.mark.slow
def test_eval_prints_fd32_and_fd64_and_caches_the_real_statistics(tmp_path):
    faces = image_folder(tmp_path / "faces", n=24, size=64)
    train_config(tiny_conf("model=dcgan32", "output.sample_every=0"), tmp_path / "run", show_progress=False)
    ckpt = tmp_path / "run" / "checkpoints" / "generator.pt"
    args = ["--ckpt", str(ckpt), "--metric", "anime-fd", "--n", "16", "dataset=folder", f"dataset.root={faces}",
            "eval.n_real=20", f"eval.stats_dir={tmp_path / 'stats'}", "eval.seed=1"]
    first = call_cli(eval_cli.main, args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    line = first.stdout.strip().splitlines()[-1]
    assert line.startswith("FD32 ") and " FD64 " in line and "16 generated faces, seed 1, vs 20 real faces" in line
    record = json.loads((tmp_path / "run" / "checkpoints" / "generator-anime-fd-n16-seed1.json").read_text())
    assert record["fd32"] > 0 and record["fd64"] > 0 and record["protocol"]["n_real"] == 20
    assert len(list((tmp_path / "stats").glob("anime-fd-64px-n20-*.npz"))) == 1
    assert not (faces / ".animegan-cache").exists()  # the meter's faces are cached with its statistics
    again = call_cli(eval_cli.main, args, cwd=tmp_path)
    assert again.stdout.strip().splitlines()[-1].split("(")[0] == line.split("(")[0]  # the same faces, the same FD


def test_without_the_extra_it_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(AnimeganError, match=r"pip install 'animegan\[anime-fd\]'"):
        anime_fd.AnimeFeatures()
