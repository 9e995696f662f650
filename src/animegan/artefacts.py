"""What a run leaves for people to look at: metrics.csv, losses.png and sample grids."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from animegan.files import RUN_DIR_REMEDY, appending, atomic_replace

LOSS_COLUMNS = ("loss_D", "loss_G", "D_x", "D_G_z")
EVAL_COLUMNS = ("fid", "kid", "kid_std")
METRIC_COLUMNS = ("epoch", "step", *LOSS_COLUMNS, *EVAL_COLUMNS)


class MetricsLog:
    """metrics.csv, appended as the run goes: one row per training step (loss columns),
    plus one row per FID/KID evaluation (eval columns); the other cells stay empty."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self, resume_step: int = 0, history: Optional[Path] = None) -> None:
        """Create the file. On resume keep the rows of `history` (this file, or the parent
        run's metrics.csv when the resumed run branches into a new directory) up to the
        checkpoint's step: later rows belong to work the resumed run will redo."""
        history = Path(history) if history else self.path
        keep = resume_step and history.exists()
        rows = [r for r in MetricsLog(history).read() if int(r["step"]) <= resume_step] if keep else []
        with atomic_replace(self.path) as tmp:
            self._write(tmp, rows)

    def append(self, rows: Sequence[Sequence[float]]) -> None:
        with appending(self.path) as f:  # a full disk: the file is cut back to whole rows, one-line error
            writer = csv.writer(f)
            for epoch, step, *values in rows:
                writer.writerow([int(epoch), int(step), *(f"{v:.5f}" for v in values), *[""] * len(EVAL_COLUMNS)])

    def append_eval(self, epoch: int, step: int, fid: float, kid: float, kid_std: float) -> None:
        with appending(self.path) as f:
            csv.writer(f).writerow([epoch, step, *[""] * len(LOSS_COLUMNS), f"{fid:.4f}", f"{kid:.6f}", f"{kid_std:.6f}"])

    def read(self) -> List[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def split(self):
        """(loss rows, evaluation rows) of the file, read once."""
        rows = self.read()
        return [r for r in rows if r.get("loss_D")], [r for r in rows if r.get("fid")]

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
    write_png(tile_images(to_uint8(images), nrow), path)


def write_png(pixels: np.ndarray, path: Path, remedy: str = RUN_DIR_REMEDY, durable: bool = True) -> None:
    """A uint8 HxWx3 array as a PNG file, atomically (a full disk: one line, and any
    previous file of that name stays as it was)."""
    from PIL import Image

    with atomic_replace(Path(path), remedy=remedy, durable=durable) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def plot_losses(metrics_csv: Path, out_png: Path) -> None:
    """Draw the G and D loss curves (raw and smoothed) against the step, and FID below
    them when the run evaluates it."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and never pops a window
    import matplotlib.pyplot as plt

    rows, evals = MetricsLog(metrics_csv).split()
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    if evals:
        fig, (ax, ax_fid) = plt.subplots(2, 1, figsize=(9, 7), dpi=100, sharex=True, height_ratios=(2, 1))
        ax_fid.plot([int(r["step"]) for r in evals], [float(r["fid"]) for r in evals], "o-", color="tab:green")
        ax_fid.set_ylabel("FID (lower is better)")
        ax_fid.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    for key, colour, label in (("loss_D", "tab:blue", "discriminator"), ("loss_G", "tab:orange", "generator")):
        values = torch.tensor([float(r[key]) for r in rows])
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        window = max(1, len(values) // 50)  # smooth over ~2% of the run
        smooth = torch.nn.functional.avg_pool1d(values[None, None], window, 1, padding=0)[0, 0]
        ax.plot(steps[window - 1:], smooth, color=colour, linewidth=1.8, label=f"{label} ({key})")
    (ax_fid if evals else ax).set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("GAN losses (thin: every step, thick: moving average)")
    ax.grid(alpha=0.3)
    ax.legend()
    # Fixed margins (inches) fit the fixed labels; tight_layout measured every label for
    # a quarter of the plot's time, paid at every epoch's end.
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.2 / width, top=1 - 0.4 / height, bottom=0.55 / height,
                        hspace=0.08)
    with atomic_replace(Path(out_png)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
