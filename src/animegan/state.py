"""A run at one step, as one object: its `state_dict()` is the training checkpoint
(last.pt, best.pt, epoch_XXX.pt), its `load_state_dict()` is a resume.

The checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`. Its keys are those animegan has always written (format
version 1), so checkpoints of earlier versions resume too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from animegan.checkpoint import FORMAT_VERSION, TRAINING_FORMAT, generator_export, save_checkpoint
from animegan.distributed import ProcessGroup
from animegan.ema import GeneratorEMA
from animegan.errors import AnimeganError
from animegan.fid_tracker import FidTracker
from animegan.guard import DivergenceGuard
from animegan.precision import LossScaling
from animegan.resume import check_data_order, saved_data_order

log = logging.getLogger("animegan")


class TrainingState:
    """The networks, their optimizers and loss scales, the EMA of G, the loop's random
    generator, where the run is (epochs done, steps done, batches done in the current
    epoch), the divergence guard, the FID tracker, the grids' fixed noise, what the batch
    order depends on, the run's config, and the checkpoint it branched from."""

    def __init__(self, *, config: dict, generator: torch.nn.Module, discriminator: torch.nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, scaling: LossScaling,
                 ema: Optional[GeneratorEMA], rng: torch.Generator, guard: DivergenceGuard, fid: FidTracker,
                 fixed_noise: torch.Tensor, data_order: Dict[str, Any], group: ProcessGroup):
        self.config, self.generator, self.discriminator = config, generator, discriminator
        self.opt_g, self.opt_d, self.scaling, self.ema, self.rng = opt_g, opt_d, scaling, ema, rng
        self.guard, self.fid, self.fixed_noise, self.data_order, self.group = guard, fid, fixed_noise, data_order, group
        self.epoch = 0  # epochs fully done
        self.step = 0  # optimizer steps (batches) done in total
        self.step_in_epoch = 0  # batches done in the epoch after `epoch`
        self.parent: Dict[str, Any] = {}  # {"checkpoint", "step"} when this run branched off an older state

    @property
    def shown(self) -> torch.nn.Module:
        """What grids, snapshots and the export show: the EMA of G when the run keeps one
        (with BatchNorm statistics of its own weights)."""
        return self.ema.averaged() if self.ema is not None else self.generator

    def state_dict(self) -> Dict[str, Any]:
        """The training checkpoint. With several processes every process must call it (it
        gathers each one's torch random state); rank 0 writes it."""
        rng = {"torch_cpu": torch.get_rng_state(), "loop": self.rng.get_state(), "loop_device": str(self.rng.device)}
        if torch.cuda.is_available():
            rng["torch_cuda"] = torch.cuda.get_rng_state_all()
        if self.group.ranks.distributed:  # dropout draws from each process's own torch generator
            rng["torch_cpu_ranks"] = self.group.gather(torch.get_rng_state())
        state = {
            "format": TRAINING_FORMAT, "version": FORMAT_VERSION,
            "epoch": self.epoch, "step": self.step, "step_in_epoch": self.step_in_epoch,
            "generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "loss_scaling": self.scaling.state_dict(),
            "rng": rng, "fixed_noise": self.fixed_noise.detach().cpu(), "config": self.config,
            "guard": self.guard.state_dict(), "fid": self.fid.state_dict(),
            "data_order": self.data_order, "parent": self.parent,
        }
        if self.ema is not None:
            state["generator_ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any], *, source: Path, new_order_allowed: bool = False) -> None:
        """Resume from a training checkpoint read from `source`: check that it fits this
        run's networks and data, then restore every part. A changed batch order is refused
        unless `new_order_allowed` (the interrupted epoch then starts again)."""
        new_order = check_data_order(saved_data_order(state), self.data_order, new_order_allowed, source)
        try:
            self.generator.load_state_dict(state["generator"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise AnimeganError(f"{source} does not match this model/optimizer config ({str(exc).splitlines()[0]}); "
                                "resume with the config it was trained with") from None
        if self.ema is not None:
            if "generator_ema" in state:
                self.ema.load_state_dict(state["generator_ema"])
            else:
                self.ema.reset()
                log.warning("%s has no EMA weights; the average starts from the current generator", source)
        self.scaling.load_state_dict(state.get("loss_scaling", {}))
        self._restore_rng(state["rng"])
        self.guard.load_state_dict(state.get("guard", {}))
        self.fid.load_state_dict(state.get("fid", {}))
        self.fixed_noise = state["fixed_noise"].to(self.fixed_noise.device)
        self.epoch, self.step, self.step_in_epoch = state["epoch"], state["step"], state["step_in_epoch"]
        self.parent = state.get("parent", {})
        if new_order and self.step_in_epoch:
            log.warning("resume_new_order: epoch %d starts again from its first batch in the new batch order",
                        self.epoch + 1)
            self.step_in_epoch = 0

    def _restore_rng(self, rng: Dict[str, Any]) -> None:
        ranks = rng.get("torch_cpu_ranks")
        same_world = ranks is not None and len(ranks) == self.group.ranks.world
        torch.set_rng_state(ranks[self.group.ranks.rank] if same_world else rng["torch_cpu"])
        if rng.get("loop_device") == str(self.rng.device):
            self.rng.set_state(rng["loop"])
        # A run moved between CPU and CUDA cannot replay the same random stream; it continues
        # with a freshly seeded one (the weights and optimiser moments are still exact).
        if "torch_cuda" in rng and torch.cuda.is_available() and len(rng["torch_cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["torch_cuda"])


class CheckpointFiles:
    """The files a run keeps of its state, in <run>/checkpoints/ and <run>/snapshots/.

    - Full training states (`last.pt` every epoch, `best.pt`, `epoch_XXX.pt` every
      `keep_every` epochs): everything a resume needs, optimizers included.
    - Network snapshots (`snapshots/generator-epoch_XXX.pt` every `snapshot_every` epochs,
      `snapshots/generator-<M>min.pt` after M minutes of training) and the export at the end: the generator shown (its EMA when kept) and its config,
      all `animegan-sample` needs, a fraction of the size (EDM keeps the two apart too).

    Only rank 0 writes. A diverged state is never written: last.pt keeps the last good one."""

    def __init__(self, run_dir: Path, group: ProcessGroup, keep_every: int = 0, snapshot_every: int = 0,
                 snapshot_minutes: Sequence[float] = ()):
        self.dir, self.snapshots = Path(run_dir) / "checkpoints", Path(run_dir) / "snapshots"
        self.group, self.keep_every, self.snapshot_every = group, keep_every, snapshot_every
        self.minutes_due = sorted(snapshot_minutes)  # snapshots still to take, in minutes of this launch's training
        self._replicas_checked = False  # logged once per run

    def save(self, state: TrainingState, name: str) -> None:
        if state.guard.diverged:
            log.warning("not writing %s: the run is diverged (%s)", name, state.guard.reason)
            return
        contents = state.state_dict()  # every process takes part (random states are gathered)
        self.check_replicas(state)
        if self.group.ranks.is_main:
            save_checkpoint(contents, self.dir / name)

    def check_replicas(self, state: TrainingState) -> None:
        """Several processes must hold the same weights (same start, same averaged
        gradients): a checkpoint is a good time to make sure, for a sum per process."""
        if not self.group.ranks.distributed:
            return
        with torch.no_grad():
            total = sum(float(p.double().sum()) for net in (state.generator, state.discriminator)
                        for p in net.parameters())
        totals = self.group.gather(total)
        if len(set(totals)) > 1:
            raise AnimeganError(f"the {len(totals)} processes hold different weights (parameter sums {totals}); "
                                "the run stops rather than save one of them")
        if not self._replicas_checked:
            log.info("all %d processes hold the same weights (parameter sum %.6f)", len(totals), total)
            self._replicas_checked = True

    def save_epoch_extras(self, state: TrainingState) -> None:
        """epoch_XXX.pt and the network snapshot, when the epoch asks for them."""
        epoch = state.epoch
        if self.keep_every and epoch % self.keep_every == 0:
            self.save(state, f"epoch_{epoch:03d}.pt")
        if self.snapshot_every and epoch % self.snapshot_every == 0 and self.group.ranks.is_main:
            self.export(state, self.snapshots / f"generator-epoch_{epoch:03d}.pt")

    def snapshot_by_the_clock(self, state: TrainingState, minutes: float) -> None:
        """The snapshots whose minute of training has come (rank 0 writes them)."""
        while self.minutes_due and minutes >= self.minutes_due[0]:
            due = self.minutes_due.pop(0)
            if self.group.ranks.is_main and not state.guard.diverged:
                self.export(state, self.snapshots / f"generator-{due:g}min.pt")

    def export(self, state: TrainingState, path: Path) -> Path:
        save_checkpoint(generator_export(state.shown, state.config["model"], epochs=state.epoch, config=state.config,
                                         step=state.step), path)
        return path
