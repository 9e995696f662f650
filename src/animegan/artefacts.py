"""What a run leaves for people to look at: metrics.csv, losses.png and sample grids."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch

from animegan.files import atomic_replace

METRIC_COLUMNS = ("epoch", "step", "loss_D", "loss_G", "D_x", "D_G_z")


class MetricsLog:
    """metrics.csv, one row per training step, appended as the run goes."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self, resume_step: int = 0) -> None:
        """Create the file, or on resume drop rows written after the checkpoint's step
        (they belong to work the resumed run will redo)."""
        keep = resume_step and self.path.exists()
        rows = [r for r in self.read() if int(r["step"]) <= resume_step] if keep else []
        with atomic_replace(self.path) as tmp:
            self._write(tmp, rows)

    def append(self, rows: Sequence[Sequence[float]]) -> None:
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            for epoch, step, *values in rows:
                writer.writerow([int(epoch), int(step), *(f"{v:.5f}" for v in values)])

    def read(self) -> List[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    @staticmethod
    def _write(path: Path, rows: List[dict]) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def tile_images(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 images [N, 3, H, W] -> one uint8 HxWx3 grid, `nrow` per row, black gaps.

    The layout of torchvision's make_grid, without importing torchvision (1.5 s of a
    cold `animegan-sample`)."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, c), dtype=np.uint8)
    pixels = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[top:top + h, left:left + w] = pixels[i]
    return grid


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any device) -> uint8 in [0, 255] on the CPU."""
    return images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()


def save_image_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """Save images in [-1, 1] as one PNG grid (atomically)."""
    from PIL import Image

    with atomic_replace(Path(path)) as tmp:
        Image.fromarray(tile_images(to_uint8(images), nrow)).save(tmp, format="PNG")


def plot_losses(metrics_csv: Path, out_png: Path) -> None:
    """Draw the G and D loss curves (raw and smoothed) against the step."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and never pops a window
    import matplotlib.pyplot as plt

    rows = MetricsLog(metrics_csv).read()
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    for key, colour, label in (("loss_D", "tab:blue", "discriminator"), ("loss_G", "tab:orange", "generator")):
        values = torch.tensor([float(r[key]) for r in rows])
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        window = max(1, len(values) // 50)  # smooth over ~2% of the run
        smooth = torch.nn.functional.avg_pool1d(values[None, None], window, 1, padding=0)[0, 0]
        ax.plot(steps[window - 1:], smooth, color=colour, linewidth=1.8, label=f"{label} ({key})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("GAN losses (thin: every step, thick: moving average)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_replace(Path(out_png)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
