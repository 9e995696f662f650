"""One training run: config -> objects -> loop -> files in the run directory.

`run_training` is what animegan.launch calls once the run is planned (animegan.plan) and
its device, process group and run directory are set up: it builds the data, the training
state (restored when resuming), the GAN step's parts, the logger and the checkpoint
files; runs the loop; and finishes the run according to why the loop stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import torch

from animegan.augment import DiffAugment
from animegan.config import RunConfig, to_dict
from animegan.config_checks import config_warnings
from animegan.data import build_image_bank
from animegan.distributed import ProcessGroup, Ranks
from animegan.ema import GeneratorEMA
from animegan.errors import AnimeganError
from animegan.fid_tracker import FidTracker
from animegan.guard import DivergenceGuard
from animegan.logger import RunLogger, flat_hparams
from animegan.loop import Outputs, evaluate_epoch, evaluation_due, train_epochs
from animegan.losses import build_loss
from animegan.lr_schedule import LearningRateSchedule
from animegan.malloc_tuning import keep_freed_memory
from animegan.models import build_pair, count_parameters
from animegan.optimizers import build_optimizers
from animegan.precision import AUTOCAST_DTYPES, LossScaling, resolve_precision
from animegan.resume import ResumePlan, data_order
from animegan.runlock import remove_stale_temporaries
from animegan.sampling import sample
from animegan.state import CheckpointFiles, TrainingState
from animegan.step import InstanceNoise, StepParts
from animegan.stopping import StopReason, StopRequests

log = logging.getLogger("animegan")


@dataclass
class RunResult:
    """How a training run ended: why it stopped, how far it got, and where its files are."""

    reason: StopReason
    epoch: int  # epochs done
    step: int  # steps done
    export: Optional[Path]  # the exported generator (None when the run was interrupted)
    final: Dict[str, float] = field(default_factory=dict)  # the last logged loss_D, loss_G, D_x, D_G_z
    best_fid: Optional[float] = None
    run_dir: Optional[Path] = None  # checkpoints/, samples/, metrics.csv, losses.png, train.log


class Interrupted(Exception):
    """SIGTERM or Ctrl-C stopped the run after a step; last.pt holds it."""

    def __init__(self, stops: StopRequests, step: int, last: Path):
        super().__init__(f"stopped by {stops.name} at step {step}; checkpoints/last.pt holds the state: continue with "
                         f"animegan-train resume={last}")
        self.exit_status = stops.exit_status


def speed_settings(conf: RunConfig, device: torch.device):
    """(precision: 'fp32' | 'bf16' | 'fp16', channels_last) from the config's auto/explicit choices."""
    channels_last = str(conf.train.channels_last).lower()
    use_cl = True if channels_last == "auto" else channels_last == "true"  # NHWC: 1.6x fp32 on CPU here
    return resolve_precision(conf.train.precision, device), use_cl


def use_compile(conf: RunConfig, device: torch.device) -> bool:
    """train.compile; auto is off. On this project's 2-core CPU torch.compile made DCGAN-64
    0-8% faster (docs/benchmarks.md) after ~45 s of compiling at every start, a loss for
    short runs; on CUDA it has not been measured yet, so it is opt-in there too."""
    return str(conf.train.compile).lower() == "true"


def build_models(model_conf, device: torch.device, channels_last: bool = False):
    generator, discriminator = build_pair(model_conf)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return generator.to(device, memory_format=memory_format), discriminator.to(device, memory_format=memory_format)


def build_training(conf: RunConfig, device: torch.device, precision: str, channels_last: bool, order: dict,
                   steps_per_epoch: int, group: ProcessGroup):
    """The run's TrainingState at step 0 and the parts of its GAN step."""
    torch.manual_seed(conf.seed)  # the same weights in every process, and for every resume
    generator, discriminator = build_models(conf.model, device, channels_last)
    if conf.model.sync_batchnorm and group.ranks.distributed:  # BatchNorm statistics over the global batch
        generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
    if group.ranks.rank:  # dropout masks differ between processes, as between the samples of one batch
        torch.manual_seed(conf.seed + 7919 * group.ranks.rank)
    opt_g, opt_d = build_optimizers(conf.optimizer, generator, discriminator)
    t = conf.train
    rng = torch.Generator(device=device).manual_seed(conf.seed + 1)  # the same stream in every process
    state = TrainingState(
        config=to_dict(conf), generator=generator, discriminator=discriminator, opt_g=opt_g, opt_d=opt_d,
        scaling=LossScaling(device, enabled=precision == "fp16"),
        ema=GeneratorEMA(generator, t.ema_kimg, t.ema_rampup, conf.batch_size, t.ema_calibration_images)
        if t.ema else None, rng=rng,
        guard=DivergenceGuard(t.guard, t.guard_patience, t.guard_d_loss, t.guard_g_loss),
        fid=FidTracker(conf.eval.patience), data_order=order, group=group,
        fixed_noise=torch.randn(conf.output.n_samples, conf.model.nz, 1, 1,
                                generator=torch.Generator().manual_seed(conf.seed)).to(device))
    parts = StepParts(
        generator=generator, discriminator=discriminator, opt_g=opt_g, opt_d=opt_d,
        loss=build_loss(conf.loss.name, real_label=conf.loss.real_label, gp_weight=conf.loss.gp_weight),
        scaling=state.scaling, rng=rng, nz=conf.model.nz, d_steps=t.d_steps, g_steps=t.g_steps,
        r1_gamma=conf.loss.r1_gamma, r2_gamma=conf.loss.r2_gamma, penalty_every=conf.loss.penalty_every,
        instance_noise=InstanceNoise(t.instance_noise, max(1.0, t.instance_noise_epochs * steps_per_epoch)),
        augment=DiffAugment(t.diffaugment, rng, group.ranks.shard) if t.diffaugment else None, ema=state.ema,
        autocast_dtype=AUTOCAST_DTYPES[precision], group=group,
        lr_schedule=LearningRateSchedule((opt_g, opt_d), conf.epochs * steps_per_epoch,
                                         conf.optimizer.decay_start, conf.optimizer.decay_to))
    return state, parts


def run_training(conf: RunConfig, run_dir: Path, device: torch.device, group: ProcessGroup,
                 resume: Optional[ResumePlan] = None, show_progress: bool = True) -> RunResult:
    """Train as configured, writing everything under `run_dir` (rank 0 only), on a device,
    process group and run directory that animegan.launch set up. `resume`: the checkpoint
    the plan continues (animegan.plan)."""
    run_dir = Path(run_dir)
    precision, channels_last = speed_settings(conf, device)
    if device.type == "cpu" and conf.train.keep_freed_memory:
        keep_freed_memory()
    check_processes(conf, device, group.ranks)
    if group.ranks.is_main:
        for warning in config_warnings(conf):
            log.warning("%s", warning)
    if group.ranks.is_main and (removed := remove_stale_temporaries(run_dir)):
        log.info("removed %d unfinished temporary file(s) that an interrupted run left in %s", removed, run_dir)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    bank = build_image_bank(conf.dataset, conf.model.image_size, conf.seed)
    if bank.batches_per_epoch(conf.batch_size) == 0:
        raise AnimeganError(f"the dataset has {len(bank)} images, fewer than batch_size={conf.batch_size}; lower batch_size")
    order = data_order(conf, bank.fingerprint())
    bank.to(device)
    evaluator = None
    if conf.eval.every_n_epochs and group.ranks.is_main:
        from animegan.fidelity import TrainingEvaluator  # FID's machinery, only for a run that measures it

        evaluator = TrainingEvaluator(conf, bank.images, device)
    state, parts = build_training(conf, device, precision, channels_last, order,
                                  bank.batches_per_epoch(conf.batch_size), group)
    if resume is not None:
        state.load_state_dict(resume.state, source=resume.source, new_order_allowed=conf.resume_new_order)
        if resume.branch:
            state.parent = {"checkpoint": str(resume.source.absolute()), "step": state.step}
            log.info("branching from %s (step %d) into %s; the run it came from is left as it is",
                     resume.source, state.step, run_dir)
        log.info("resuming from %s at epoch %d, step %d", resume.source, state.epoch, state.step)

    log.info("device %s, precision %s, channels_last %s%s | %d images %dx%d | G %.2fM params, D %.2fM params",
             device, precision, channels_last, f" | {group.ranks.world} processes" if group.ranks.distributed else "",
             len(bank), bank.image_size, bank.image_size, count_parameters(state.generator) / 1e6,
             count_parameters(state.discriminator) / 1e6)
    log.info("loss %s%s%s | %s", conf.loss.name, f" + R1 gamma {conf.loss.r1_gamma:g}" if conf.loss.r1_gamma else "",
             f" + R2 gamma {conf.loss.r2_gamma:g}" if conf.loss.r2_gamma else "",
             ", ".join(_stabilisers(conf)) or "no stabilisers")
    logger = RunLogger(run_dir, conf.logger, conf.output.nrow, active=group.ranks.is_main)
    k = conf.checkpoint
    out = Outputs(logger, CheckpointFiles(run_dir, group, k.keep_every, k.snapshot_every, k.snapshot_minutes), evaluator)
    ended_well = False
    try:
        history = resume.parent_run / "metrics.csv" if resume is not None and resume.branch and resume.parent_run else None
        logger.start(resume_step=state.step, history=history)
        if resume is not None and resume.state["step_in_epoch"] == 0 and state.epoch > 0 \
                and evaluation_due(conf, state.epoch) and state.fid.last_epoch != state.epoch:
            log.info("the evaluation of epoch %d did not finish before the run stopped; evaluating it now", state.epoch)
            evaluate_epoch(state, out)
        if use_compile(conf, device):  # in place: state_dict keys, EMA and checkpoints stay as in eager mode
            state.generator.compile()
            state.discriminator.compile()
        started, start_step = time.perf_counter(), state.step
        with StopRequests() as stops:
            reason = train_epochs(state, parts, bank, conf, out, stops, channels_last, show_progress)
        done, seconds = state.step - start_step, time.perf_counter() - started
        log.info("trained %d steps in %.1fs (%.0f images/s); stopped: %s", done, seconds,
                 done * conf.batch_size / max(seconds, 1e-9), reason.value)
        result = finish_run(conf, state, reason, out, stops, run_dir)
        ended_well = True
        return result
    finally:
        logger.close(quiet=not ended_well)  # an error of the run itself is the one to report


def finish_run(conf: RunConfig, state: TrainingState, reason: StopReason, out: Outputs, stops: StopRequests,
               run_dir: Path) -> RunResult:
    """What the end of a run leaves, by why it stopped."""
    last = run_dir / "checkpoints" / "last.pt"
    is_main = state.group.ranks.is_main
    if reason is StopReason.SIGNAL:
        raise Interrupted(stops, state.step, last)
    stopped_inside_epoch = state.step_in_epoch > 0
    if stopped_inside_epoch and conf.output.sample_every and is_main and not state.guard.nonfinite_step:
        out.logger.grid(sample(state.shown, state.fixed_noise), "final", state.step)  # newer than the epoch's grid
    final = dict(zip(("loss_D", "loss_G", "D_x", "D_G_z"), out.logger.last_row[2:])) if out.logger.last_row else {}
    if reason is StopReason.DIVERGED or state.guard.diverged:
        out.logger.finish(flat_hparams(state.config), final)
        raise AnimeganError(f"training diverged ({state.guard.reason}); no generator exported. checkpoints/last.pt "
                            "holds the last good state: resume it with a lower lr, label smoothing, or another loss")
    export = run_dir / "checkpoints" / conf.checkpoint.export
    if is_main:
        out.checkpoints.export(state, export)
        log.info("generator%s exported to %s", " (EMA weights)" if state.ema is not None else "", export)
    best = state.fid.best_fid
    if best is not None:
        log.info("best FID %.2f at epoch %d: %s", best, state.fid.best_epoch, run_dir / "checkpoints" / "best.pt")
    out.logger.finish(flat_hparams(state.config), {**final, **({"best_fid": best} if best is not None else {})})
    return RunResult(reason, state.epoch, state.step, export if is_main else None, final, best, run_dir)


def check_processes(conf: RunConfig, device: torch.device, ranks: Ranks) -> None:
    """What a run of several processes needs that one process does not."""
    if not ranks.distributed:
        return
    if conf.batch_size % ranks.world:
        raise AnimeganError(f"batch_size={conf.batch_size} is the global batch and must split evenly over the "
                            f"{ranks.world} processes; use a multiple of {ranks.world}")
    if conf.model.sync_batchnorm and device.type != "cuda":
        raise AnimeganError("model.sync_batchnorm=true needs CUDA GPUs (PyTorch's SyncBatchNorm does not run on "
                            "the CPU); on CPU processes each one normalises its own part of the batch")


def _stabilisers(conf: RunConfig) -> list:
    m, t, out = conf.model, conf.train, []
    if m.d_spectral_norm or m.g_spectral_norm:
        out.append("spectral norm in " + " and ".join(n for n, on in (("D", m.d_spectral_norm), ("G", m.g_spectral_norm)) if on))
    if m.minibatch_std:
        out.append("minibatch std")
    if t.ema:
        out.append(f"EMA of G (half-life {t.ema_kimg:g} kimg" + (f", ramp {t.ema_rampup:g})" if t.ema_rampup else ")"))
    if t.diffaugment:
        out.append(f"DiffAugment {','.join(t.diffaugment)}")
    if conf.loss.real_label < 1:
        smoothing = conf.loss.name in ("bce", "lsgan")
        out.append(f"label smoothing {conf.loss.real_label:g}" + ("" if smoothing else f" (ignored by {conf.loss.name})"))
    if t.instance_noise:
        out.append(f"instance noise {t.instance_noise:g}")
    return out
