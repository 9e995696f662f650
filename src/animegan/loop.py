"""The training loop, top to bottom: for every batch a GAN step (animegan.step); every
`train.log_every` steps one read of the metrics, which are logged and checked (divergence,
time budget); between steps, requests to stop (SIGTERM, Ctrl-C); at an epoch's end the
grid, the checkpoint (the state first), FID, the plot. It returns why it stopped.

Everything it changes lives in the TrainingState; everything it writes goes through the
RunLogger and the CheckpointFiles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional

import torch
from tqdm import tqdm

from animegan.config import RunConfig
from animegan.data.bank import ImageBank
from animegan.logger import RunLogger
from animegan.sampling import sample
from animegan.state import CheckpointFiles, TrainingState
from animegan.step import StepParts, gan_step
from animegan.stopping import StopReason, StopRequests, TimeBudget

if TYPE_CHECKING:
    from animegan.fidelity import TrainingEvaluator


@dataclass
class Outputs:
    """Where the loop's results go."""

    logger: RunLogger
    checkpoints: CheckpointFiles
    evaluator: Optional[TrainingEvaluator]  # rank 0 of a run that evaluates FID; None elsewhere


def train_epochs(state: TrainingState, parts: StepParts, bank: ImageBank, conf: RunConfig, out: Outputs,
                 stops: StopRequests, channels_last: bool = False, show_progress: bool = True) -> StopReason:
    """Train from `state` until the last epoch, or until something stops the run."""
    group, batch_size = state.group, conf.batch_size
    n_batches = bank.batches_per_epoch(batch_size)
    budget = TimeBudget(conf.train.max_minutes)
    window = MetricsWindow(state, conf.epochs * n_batches)
    show_progress = show_progress and group.ranks.is_main
    reason: Optional[StopReason] = None

    while state.epoch < conf.epochs:
        order = bank.epoch_order(conf.seed, state.epoch)
        epoch_started = time.perf_counter()
        bar = tqdm(total=n_batches, initial=state.step_in_epoch, desc=f"epoch {state.epoch + 1}/{conf.epochs}",
                   unit="batch", disable=not show_progress, leave=False, dynamic_ncols=True)
        window.restart_clock()
        for b in range(state.step_in_epoch, n_batches):
            real = bank.batch(order[b * batch_size:(b + 1) * batch_size], parts.rng, channels_last, group.ranks.shard)
            window.add(gan_step(parts, real, state.step), batch_size)
            state.step, state.step_in_epoch = state.step + 1, state.step_in_epoch + 1
            if len(window) >= conf.train.log_every or b + 1 == n_batches:
                reason = log_window(window, state, out.logger, out.checkpoints, budget, bar)
            if reason is None and group.any(stops.received is not None):
                reason = StopReason.SIGNAL
            if reason is not None:
                break
            if conf.checkpoint.every_n_steps and state.step % conf.checkpoint.every_n_steps == 0 and b + 1 < n_batches:
                # metrics.csv must not lag behind last.pt
                log_window(window, state, out.logger, out.checkpoints, budget, bar)
                out.checkpoints.save(state, "last.pt")
        bar.close()
        if reason is StopReason.DIVERGED:
            return reason  # nothing of a broken state is kept: last.pt holds the last good one
        if state.step_in_epoch < n_batches:  # stopped inside the epoch
            log_window(window, state, out.logger, out.checkpoints, budget, bar)
            out.checkpoints.save(state, "last.pt")
            return reason

        # The epoch's end: the grid, the state first, then FID (long on a CPU), the plot.
        state.epoch, state.step_in_epoch = state.epoch + 1, 0
        every = conf.output.sample_every
        if every and (state.epoch % every == 0 or state.epoch == conf.epochs) and group.ranks.is_main:
            out.logger.grid(sample(state.shown, state.fixed_noise), f"epoch_{state.epoch:03d}", state.step)
        out.logger.epoch_done(state.epoch, conf.epochs, time.perf_counter() - epoch_started, state.step,
                              state.scaling.skipped() if state.scaling.enabled else None, window.run_time_left())
        out.checkpoints.save(state, "last.pt")
        if evaluation_due(conf, state.epoch):
            evaluate_epoch(state, out)
        out.checkpoints.save_epoch_extras(state)
        if reason is not None:  # time or a signal ran out exactly at the epoch's end
            return reason
        if state.fid.exhausted and state.epoch < conf.epochs:
            return StopReason.FID_PATIENCE
    return StopReason.FINISHED


class MetricsWindow:
    """The step metrics since the last read, kept on the device until then."""

    def __init__(self, state: TrainingState, total_steps: int):
        self.state, self.pending, self.images = state, [], 0
        self.started = time.perf_counter()
        # the run's pace since this process started it (epoch-end work included): its time left
        self.run_started, self.run_first_step, self.total_steps = self.started, state.step, total_steps

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, metrics: torch.Tensor, images: int) -> None:
        self.pending.append(metrics)
        self.images += images

    def read(self) -> List[List[float]]:
        """Rows [epoch, step, loss_D, loss_G, D(x), D(G(z))], averaged over the processes:
        the one host sync of the window."""
        values = self.state.group.mean(torch.stack(self.pending)).cpu()
        first = self.state.step - len(self.pending) + 1
        rows = [[self.state.epoch + 1, first + k, *v.tolist()] for k, v in enumerate(values)]
        self.pending = []
        return rows

    def restart_clock(self) -> None:  # images/s counts training only, not the epoch-end work
        self.started, self.images = time.perf_counter(), 0

    def run_time_left(self) -> str:
        return time_left(time.perf_counter() - self.run_started, self.state.step - self.run_first_step,
                         self.total_steps - self.state.step)

    def images_per_second(self) -> float:
        now = time.perf_counter()
        rate = self.images / max(now - self.started, 1e-9)
        self.started, self.images = now, 0
        return rate


def time_left(seconds: float, steps_done: int, steps_left: int) -> str:
    """The time the rest of a run takes at its pace so far, written as the bar writes times
    ([H:]MM:SS; "?" before a step)."""
    if steps_done <= 0:
        return "?"
    return tqdm.format_interval(max(0.0, seconds / steps_done * steps_left))


def log_window(window: MetricsWindow, state: TrainingState, logger: RunLogger, checkpoints: CheckpointFiles,
               budget: TimeBudget, bar: tqdm) -> Optional[StopReason]:
    """Read, log and check the window's metrics (and take the snapshots whose minute has
    come); the reason to stop, if there is one."""
    if not len(window):
        return None
    n = len(window)
    rows = window.read()
    rate = window.images_per_second()
    logger.steps(rows, rate)
    checkpoints.snapshot_by_the_clock(state, budget.minutes)
    loss_d, loss_g, d_x, d_gz = rows[-1][2:]
    bar.set_postfix(loss_D=f"{loss_d:.3f}", loss_G=f"{loss_g:.3f}", D_x=f"{d_x:.2f}", D_G_z=f"{d_gz:.2f}",
                    img_s=f"{rate:.0f}", run_left=window.run_time_left(), refresh=False)
    bar.update(n)
    if state.guard.observe(rows):  # rows are the same on every process: so is the decision
        return StopReason.DIVERGED
    if state.group.any(budget.spent):  # rank 0's clock decides for all
        return StopReason.OUT_OF_TIME
    return None


def evaluation_due(conf: RunConfig, epoch: int) -> bool:
    every = conf.eval.every_n_epochs
    return bool(every) and (epoch % every == 0 or epoch == conf.epochs)


def evaluate_epoch(state: TrainingState, out: Outputs) -> None:
    """FID of the state just saved (on rank 0), then last.pt again with the result, and
    best.pt when it is the best so far."""
    if out.evaluator is not None:
        result = out.evaluator.measure(state.shown)
        improved = state.fid.observe(state.epoch, result["fid"])
        out.logger.evaluation(state.epoch, state.step, result, state.fid.trend(), improved)
    state.fid.load_state_dict(state.group.broadcast(state.fid.state_dict()))  # the other ranks wait here
    out.checkpoints.save(state, "last.pt")
    if state.fid.best_epoch == state.epoch:
        out.checkpoints.save(state, "best.pt")
