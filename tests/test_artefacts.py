"""Grids, metrics.csv and the loss plot."""

import pytest
import torch
from PIL import Image
from torchvision.utils import make_grid

from animegan.artefacts import MetricsLog, plot_losses, save_image_grid, tile_images


@pytest.mark.parametrize("n,nrow", [(16, 4), (5, 8), (12, 5), (64, 8)])
def test_tile_images_matches_torchvision_make_grid(n, nrow):
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    expected = make_grid(images, nrow=nrow, padding=2).permute(1, 2, 0).numpy()
    assert (tile_images(images, nrow) == expected).all()


def test_saved_grid_maps_minus_one_to_black_and_one_to_white(tmp_path):
    images = torch.cat([-torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4)])
    save_image_grid(images, tmp_path / "g.png", nrow=2)
    grid = Image.open(tmp_path / "g.png")
    assert grid.size == (14, 8)
    assert grid.getpixel((3, 3)) == (0, 0, 0) and grid.getpixel((9, 3)) == (255, 255, 255)


@pytest.mark.slow
def test_metrics_log_appends_and_truncates_on_resume(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    log.start()
    log.append([[1, step, 1.0, 2.0, 0.5, 0.4] for step in range(1, 11)])
    log.start(resume_step=6)  # rows after the checkpoint's step belong to work that is redone
    assert [int(r["step"]) for r in log.read()] == [1, 2, 3, 4, 5, 6]
    plot_losses(log.path, tmp_path / "losses.png")
    assert Image.open(tmp_path / "losses.png").size[0] > 400
