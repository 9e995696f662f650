"""Tests for the built-in procedural anime-face dataset (CPU only, a few seconds)."""

import numpy as np
import pytest
import torch
from PIL import Image

from animegan.data.synthetic import draw_face, render_faces


@pytest.fixture(scope="module")
def faces32() -> torch.Tensor:
    return render_faces(64, 32, seed=0, workers=1)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_render_faces_shape_dtype_range(size):
    faces = render_faces(3, size, seed=0, workers=1)
    assert faces.shape == (3, 3, size, size)
    assert faces.dtype == torch.uint8
    assert faces.is_contiguous()
    # Drawn faces use much of the range: white eye highlights and dark pupils/lashes.
    assert int(faces.max()) >= 200
    assert int(faces.min()) <= 80


def test_odd_sizes_and_empty():
    for size in (16, 48, 96):
        assert render_faces(2, size, workers=1).shape == (2, 3, size, size)
    assert render_faces(0, 32).shape == (0, 3, 32, 32)
    with pytest.raises(ValueError):
        draw_face(0, 0, 8)


def test_draw_face_is_rgb_image_matching_render_faces():
    img = draw_face(7, 3, 64)
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB" and img.size == (64, 64)
    row = render_faces(4, 64, seed=7, workers=1)[3]
    assert torch.equal(row, torch.from_numpy(np.array(img)).permute(2, 0, 1))


def test_deterministic_per_seed_and_index():
    a = np.asarray(draw_face(123, 5, 64))
    b = np.asarray(draw_face(123, 5, 64))
    assert np.array_equal(a, b)


def test_workers_do_not_change_result():
    one = render_faces(12, 32, seed=3, workers=1)
    two = render_faces(12, 32, seed=3, workers=2)
    assert torch.equal(one, two)


def test_different_seeds_and_indices_differ():
    base = np.asarray(draw_face(0, 0, 32)).astype(int)
    assert np.abs(base - np.asarray(draw_face(1, 0, 32)).astype(int)).mean() > 5
    assert np.abs(base - np.asarray(draw_face(0, 1, 32)).astype(int)).mean() > 5


def test_all_faces_distinct(faces32):
    flat = faces32.reshape(len(faces32), -1)
    assert len({bytes(row.numpy()) for row in flat}) == len(faces32)


def test_colour_variety(faces32):
    # Per-image mean colour must spread across images (hair, skin, background vary);
    # a collapsed or near-constant generator would give a spread near zero.
    means = faces32.float().mean(dim=(2, 3))  # [N, 3]
    assert bool((means.std(dim=0) > 12).all()), means.std(dim=0)
    # Background colours (top-left pixel region) are not all the same either.
    corners = faces32[:, :, :2, :2].float().mean(dim=(2, 3)).round()
    assert len({tuple(c.tolist()) for c in corners}) > 32


def test_faces_have_structure(faces32):
    x = faces32.float()
    # Each image has real detail, not a flat fill.
    assert bool((x.std(dim=(1, 2, 3)) > 15).all())
    # The centre (face) differs from the corners (background / hair) in most images.
    centre = x[:, :, 8:24, 8:24].mean(dim=(2, 3))
    corners = torch.cat([x[:, :, :3, :3], x[:, :, :3, -3:]], dim=2).mean(dim=(2, 3))
    differs = (centre - corners).abs().max(dim=1).values > 10
    assert differs.float().mean() >= 0.9
    # Two dark pupils sit in the middle band: its darkest pixels are much darker than its mean.
    band = x[:, :, 12:22, 6:26].mean(dim=1).reshape(len(x), -1)
    assert float((band.mean(1) - band.min(1).values).median()) > 60
