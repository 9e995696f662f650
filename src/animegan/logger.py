"""One logger for every number and picture of a run.

`RunLogger` sends each to the sinks the `logger` config group turns on:
- the console and <run>/train.log (Python logging; always),
- `logger.csv`: metrics.csv (one row per step, one per FID evaluation) and losses.png,
- `logger.tensorboard`: TensorBoard event files in <run>/tensorboard/ (`tensorboard
  --logdir outputs`): losses, D(x), D(G(z)), images/s, FID/KID as scalars, the
  fixed-noise grid as an image every epoch, the config and final metrics as hparams,
and writes the sample grids (<run>/samples/epoch_XXX.png). Only rank 0 logs; every
other process of a multi-process run gets an inactive logger.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch

from animegan.artefacts import MetricsLog, plot_losses, save_image_grid
from animegan.errors import AnimeganError

log = logging.getLogger("animegan")

LOSS_SCALARS = {"loss_D": "loss/D", "loss_G": "loss/G", "D_x": "D/real (D(x))", "D_G_z": "D/fake (D(G(z)))"}


class RunLogger:
    def __init__(self, run_dir: Path, logger_conf, nrow: int = 8, active: bool = True):
        self.run_dir, self.nrow, self.active = Path(run_dir), nrow, active
        self.samples_dir = self.run_dir / "samples"
        csv = logger_conf.csv if active else None
        self.csv = MetricsLog(self.run_dir / "metrics.csv") if csv is not None else None
        self.plot = bool(csv is not None and csv.plot)
        self.tensorboard = None
        if active and logger_conf.tensorboard is not None:
            self.tensorboard = TensorBoard(self.run_dir / "tensorboard", logger_conf.tensorboard.flush_secs)
        self.last_row: Optional[Sequence[float]] = None  # the newest step's metrics, for the epoch line
        self.plotted_step: Optional[float] = -1  # the newest step losses.png shows (-1: not drawn yet)

    def start(self, resume_step: int = 0, history: Optional[Path] = None) -> None:
        """A new metrics.csv, or on resume the rows of `history` up to the checkpoint's step."""
        if self.active:
            self.samples_dir.mkdir(parents=True, exist_ok=True)
        if self.csv is not None:
            self.csv.start(resume_step=resume_step, history=history)

    def steps(self, rows: List[List[float]], images_per_second: float) -> None:
        """Rows [epoch, step, loss_D, loss_G, D(x), D(G(z))] of the steps since the last call."""
        self.last_row = rows[-1]
        if self.csv is not None:
            self.csv.append(rows)
        if self.tensorboard is not None:
            with self.tensorboard.writing() as writer:
                for epoch, step, *values in rows:
                    for name, value in zip(LOSS_SCALARS.values(), values):
                        writer.add_scalar(name, value, int(step))
                writer.add_scalar("speed/images per second", images_per_second, int(rows[-1][1]))

    def evaluation(self, epoch: int, step: int, result: Dict[str, Any], trend: str, improved: bool) -> None:
        n_real = result["protocol"]["n_real"]
        log.info("epoch %d: FID %.2f, KID %.4f +- %.4f (%d generated vs %d real, %.0fs) | %s%s", epoch, result["fid"],
                 result["kid"], result["kid_std"], result["protocol"].get("n_generated", 0), n_real,
                 result["seconds"], trend, " | new best: checkpoints/best.pt" if improved else "")
        if self.csv is not None:
            self.csv.append_eval(epoch, step, result["fid"], result["kid"], result["kid_std"])
        if self.tensorboard is not None:
            with self.tensorboard.writing() as writer:
                for name in ("fid", "kid"):
                    writer.add_scalar(f"quality/{name.upper()}", result[name], step)

    def grid(self, images: torch.Tensor, name: str, step: int) -> None:
        """samples/<name>.png from images in [-1, 1], and the same grid in TensorBoard."""
        if not self.active:
            return
        save_image_grid(images, self.samples_dir / f"{name}.png", self.nrow)
        if self.tensorboard is not None:
            from animegan.artefacts import tile_images, to_uint8

            grid = tile_images(to_uint8(images), self.nrow)
            with self.tensorboard.writing() as writer:
                writer.add_image("samples (fixed noise)", grid, step, dataformats="HWC")

    def epoch_done(self, epoch: int, epochs: int, seconds: float, step: int, skipped: Optional[Dict[str, int]],
                   run_left: str = "") -> None:
        """The epoch's log line; `run_left`: the rest of the run at its pace so far ([H:]MM:SS)."""
        if not self.active:
            return
        loss_d, loss_g, d_x, d_gz = self.last_row[2:] if self.last_row else [float("nan")] * 4
        log.info("epoch %d/%d done in %.1fs | step %d | loss_D %.5f loss_G %.5f D(x) %.5f D(G(z)) %.5f%s%s", epoch,
                 epochs, seconds, step, loss_d, loss_g, d_x, d_gz,
                 f" | fp16 steps skipped (inf/NaN gradients) so far: D {skipped['D']}, G {skipped['G']}"
                 if skipped else "", f" | the run's time left {run_left}" if run_left and epoch < epochs else "")
        self.plot_losses()
        if self.tensorboard is not None:
            with self.tensorboard.writing() as writer:
                writer.flush()

    def plot_losses(self) -> None:
        """Redraw losses.png from metrics.csv, unless it already shows the newest step."""
        step = self.last_row[1] if self.last_row else None
        if self.plot and step != self.plotted_step:
            plot_losses(self.csv.path, self.run_dir / "losses.png")
            self.plotted_step = step

    def finish(self, hparams: Dict[str, Any], final: Dict[str, float]) -> None:
        """The run's settings and final metrics (TensorBoard's HPARAMS tab), the timelapse
        of the grids, and losses.png up to the last step (a run out of time stops mid-epoch)."""
        if not self.active:
            return
        self.plot_losses()  # a run out of time stops mid-epoch, after the last epoch's plot
        if self.samples_dir.is_dir() and any(self.samples_dir.glob("*.png")):
            from animegan.gif import write_timelapse

            write_timelapse(self.samples_dir)
        if self.tensorboard is not None:
            with self.tensorboard.writing() as writer:
                writer.add_hparams(hparams, {f"final/{k}": v for k, v in final.items()}, run_name=".")

    def close(self, quiet: bool = False) -> None:
        """Close the TensorBoard writer; `quiet`: a write error is not raised (the run is
        already ending with an error of its own, which is the one to report)."""
        if self.tensorboard is not None:
            tensorboard, self.tensorboard = self.tensorboard, None
            try:
                with tensorboard.writing() as writer:
                    writer.close()
            except AnimeganError:
                if not quiet:
                    raise


class TensorBoard:
    """A SummaryWriter whose write errors are one line. Its events are written by a thread
    of its own: a full disk fails there first (quietly: see _quiet_writer_thread) and the
    writer raises the OSError again at the next call in the training thread."""

    def __init__(self, folder: Path, flush_secs: int):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        _quiet_writer_thread()
        self.folder = Path(folder)
        with _one_line_errors(self.folder):
            self.writer = SummaryWriter(str(self.folder), flush_secs=flush_secs)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Any]:
        """The SummaryWriter, for a block of writes whose OSError becomes one line."""
        with _one_line_errors(self.folder):
            yield self.writer


@contextlib.contextmanager
def _one_line_errors(folder: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise AnimeganError(f"could not write the TensorBoard events in {folder} ({exc.strerror or exc}); the "
                            "events written before are kept; free some space, or log without TensorBoard "
                            "(logger=csv)") from None


def _quiet_writer_thread() -> None:
    """No traceback from TensorBoard's writer thread for an OSError (a full disk): the
    training thread gets the same error at its next write, as one line (TensorBoard)."""
    if getattr(threading.excepthook, "animegan", False):
        return
    previous = threading.excepthook

    def hook(args) -> None:
        if not (issubclass(args.exc_type, OSError) and type(args.thread).__module__.startswith("tensorboard.")):
            previous(args)

    hook.animegan = True
    threading.excepthook = hook


def flat_hparams(config: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """The config as TensorBoard hparams: dotted keys, only numbers, strings and booleans."""
    out: Dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, float, str)):
            out[f"{prefix}{key}"] = value
        elif isinstance(value, list):
            out[f"{prefix}{key}"] = ",".join(map(str, value))
    return out
