"""One training run: config -> objects -> loop -> files in the run directory.

`run_training` is what `animegan-train` calls once Hydra has composed the config and
made the run directory. It builds the data, the networks and the optimizers, restores a
checkpoint when resuming, and hands the loop callbacks that write the artefacts.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import torch

from animegan import checkpoint as ckpt
from animegan import fidelity
from animegan.artefacts import MetricsLog, plot_losses, save_image_grid
from animegan.augment import DiffAugment
from animegan.config import TrainConfig, config_warnings, to_dict
from animegan.data import build_image_bank
from animegan.ema import GeneratorEMA
from animegan.errors import AnimeganError
from animegan.fid_tracker import FidTracker
from animegan.gif import write_timelapse
from animegan.guard import DivergenceGuard
from animegan.loop import train
from animegan.losses import build_loss
from animegan.malloc_tuning import keep_freed_memory
from animegan.models import build_pair, count_parameters
from animegan.optimizers import build_optimizers
from animegan.precision import AUTOCAST_DTYPES, LossScaling, resolve_precision
from animegan.resume import check_data_order, data_order, is_newest_state, run_dir_of, saved_data_order
from animegan.sampling import eval_mode

log = logging.getLogger("animegan")


def select_device(name: str) -> torch.device:
    """auto (CUDA if present, else CPU), cpu, cuda or cuda:N, checked against this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AnimeganError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AnimeganError(f"device={name} was asked for, but PyTorch sees no CUDA GPU here; "
                                "use device=cpu or device=auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise AnimeganError(f"device={name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        if device.index is not None:
            torch.cuda.set_device(device)  # libraries that allocate on "the current GPU" use this one too
    return device


def speed_settings(conf: TrainConfig, device: torch.device):
    """(precision: 'fp32' | 'bf16' | 'fp16', channels_last) from the config's auto/explicit choices."""
    channels_last = str(conf.train.channels_last).lower()
    use_cl = True if channels_last == "auto" else channels_last == "true"  # NHWC: 1.6x fp32 on CPU here
    return resolve_precision(conf.train.precision, device), use_cl


def use_compile(conf: TrainConfig, device: torch.device) -> bool:
    """train.compile; auto is off. On this project's 2-core CPU torch.compile made DCGAN-64
    0-8% faster (docs/benchmarks.md) after ~45 s of compiling at every start, a loss for
    short runs; on CUDA it has not been measured yet, so it is opt-in there too."""
    return str(conf.train.compile).lower() == "true"


def build_models(model_conf, device: torch.device, channels_last: bool = False):
    generator, discriminator = build_pair(model_conf)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return generator.to(device, memory_format=memory_format), discriminator.to(device, memory_format=memory_format)


def run_training(conf: TrainConfig, run_dir: Path, show_progress: bool = True) -> Path:
    """Train as configured, writing everything under `run_dir`; return the exported generator's path."""
    run_dir = Path(run_dir)
    ckpt_dir, samples_dir = run_dir / "checkpoints", run_dir / "samples"
    device = select_device(conf.device)
    precision, channels_last = speed_settings(conf, device)
    autocast_dtype = AUTOCAST_DTYPES[precision]
    if device.type == "cpu" and conf.train.keep_freed_memory:
        keep_freed_memory()
    config_dict = to_dict(conf)
    for warning in config_warnings(conf):
        log.warning("%s", warning)

    state = ckpt.load_training_state(Path(conf.resume)) if conf.resume else None
    parent_run = run_dir_of(Path(conf.resume)) if state is not None else None
    branch = state is not None and (parent_run is None or parent_run.resolve() != run_dir.resolve())
    if state is not None and not branch and not is_newest_state(Path(conf.resume), int(state["step"])):
        raise AnimeganError(f"{conf.resume} is older than {parent_run / 'checkpoints' / 'last.pt'}: resuming it inside "
                            "its own run directory would overwrite that newer work; leave out hydra.run.dir and the "
                            "resumed run branches into a new directory")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    samples_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(conf.seed)  # model weights (and dropout) depend on the seed alone
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    bank = build_image_bank(conf.dataset, conf.model.image_size, conf.seed)
    if bank.batches_per_epoch(conf.batch_size) == 0:
        raise AnimeganError(f"the dataset has {len(bank)} images, fewer than batch_size={conf.batch_size}; lower batch_size")
    order = data_order(conf, bank.fingerprint())
    new_order = state is not None and check_data_order(saved_data_order(state), order, conf.resume_new_order,
                                                       Path(conf.resume))
    bank.to(device)
    evaluator = TrainingEvaluator(conf, bank, device) if conf.eval.every_n_epochs else None

    generator, discriminator = build_models(conf.model, device, channels_last)
    opt_g, opt_d = build_optimizers(conf.optimizer, generator, discriminator)
    scaling = LossScaling(device, enabled=precision == "fp16")
    loss = build_loss(conf.loss.name, real_label=conf.loss.real_label, gp_weight=conf.loss.gp_weight)
    rng = torch.Generator(device=device).manual_seed(conf.seed + 1)
    augment = DiffAugment(conf.train.diffaugment, rng) if conf.train.diffaugment else None
    t = conf.train
    guard = DivergenceGuard(t.guard, t.guard_patience, t.guard_d_loss, t.guard_g_loss)
    fixed_noise = torch.randn(conf.output.n_samples, conf.model.nz, 1, 1, generator=torch.Generator().manual_seed(conf.seed))

    start_epoch = start_step = start_step_in_epoch = 0
    lineage = {}  # where this run came from, when it branched off another run's checkpoint
    if state is not None:
        try:
            generator.load_state_dict(state["generator"])
            discriminator.load_state_dict(state["discriminator"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise AnimeganError(f"{conf.resume} does not match this model/optimizer config ({str(exc).splitlines()[0]}); "
                                "resume with the config it was trained with") from None
        ckpt.restore_rng(state, rng)
        guard.load_state_dict(state.get("guard", {}))
        scaling.load_state_dict(state.get("loss_scaling", {}))
        if evaluator is not None:
            evaluator.tracker.load_state_dict(state.get("fid", {}))
        fixed_noise = state["fixed_noise"]
        start_epoch, start_step, start_step_in_epoch = state["epoch"], state["step"], state["step_in_epoch"]
        lineage = state.get("parent", {})
        if branch:
            lineage = {"checkpoint": str(Path(conf.resume).absolute()), "step": start_step}
            log.info("branching from %s (step %d) into %s; the run it came from is left as it is",
                     conf.resume, start_step, run_dir)
        if new_order and start_step_in_epoch:
            log.warning("resume_new_order: epoch %d starts again from its first batch in the new batch order",
                        start_epoch + 1)
            start_step_in_epoch = 0
        log.info("resuming from %s at epoch %d, step %d", conf.resume, start_epoch, start_step)
    fixed_noise = fixed_noise.to(device)
    ema = GeneratorEMA(generator, conf.train.ema_decay) if conf.train.ema else None
    if ema is not None and state is not None:
        if "generator_ema" in state:
            ema.load_state_dict(state["generator_ema"])
        else:
            log.warning("%s has no EMA weights; the average starts from the current generator", conf.resume)
    shown = ema.module if ema is not None else generator  # what grids and the export show

    log.info("device %s, precision %s, channels_last %s | %d images %dx%d | G %.2fM params, D %.2fM params",
             device, precision, channels_last, len(bank), bank.image_size,
             bank.image_size, count_parameters(generator) / 1e6, count_parameters(discriminator) / 1e6)
    log.info("loss %s%s | %s", conf.loss.name, f" + R1 gamma {conf.loss.r1_gamma:g}" if conf.loss.r1_gamma else "",
             ", ".join(_stabilisers(conf)) or "no stabilisers")
    metrics = MetricsLog(run_dir / "metrics.csv")
    metrics.start(resume_step=start_step, history=parent_run / "metrics.csv" if branch and parent_run else None)

    def save_state(path: Path, epoch: int, step: int, step_in_epoch: int) -> None:
        if guard.diverged:  # never replace the last good checkpoint with a diverged state
            log.warning("not writing %s: the run is diverged (%s)", path.name, guard.reason)
            return
        ckpt.save_checkpoint(ckpt.training_state(
            generator=generator, discriminator=discriminator, opt_g=opt_g, opt_d=opt_d, epoch=epoch, step=step,
            step_in_epoch=step_in_epoch, loop_rng=rng, fixed_noise=fixed_noise, config=config_dict,
            generator_ema=ema, extra={"guard": guard.state_dict(), "loss_scaling": scaling.state_dict(),
                                      "data_order": order, "parent": lineage,
                                      "fid": evaluator.tracker.state_dict() if evaluator else {}}), path)

    def evaluation_due(epoch: int) -> bool:
        every = conf.eval.every_n_epochs
        return evaluator is not None and (epoch % every == 0 or epoch == conf.epochs)

    def save_epoch_states(epoch: int, step: int, last_saved: bool = False) -> None:
        """The epoch's checkpoints and its FID. last.pt comes first, so a kill during a long
        CPU evaluation loses only the evaluation, which the resumed run redoes (then with
        `last_saved`); the files written after the evaluation carry its result."""
        if not last_saved:
            save_state(ckpt_dir / "last.pt", epoch, step, 0)
        if evaluation_due(epoch):
            best = evaluator.evaluate(shown, epoch, step, metrics)
            save_state(ckpt_dir / "last.pt", epoch, step, 0)  # again, with the FID tracker
            if best:
                save_state(ckpt_dir / "best.pt", epoch, step, 0)
        if conf.checkpoint.keep_every and epoch % conf.checkpoint.keep_every == 0:
            save_state(ckpt_dir / f"epoch_{epoch:03d}.pt", epoch, step, 0)

    if state is not None and state["step_in_epoch"] == 0 and start_epoch > 0 and evaluation_due(start_epoch) \
            and evaluator.tracker.last_epoch != start_epoch:
        log.info("the evaluation of epoch %d did not finish before the run stopped; evaluating it now", start_epoch)
        save_epoch_states(start_epoch, start_step, last_saved=True)

    epoch_clock = [time.perf_counter()]

    def on_epoch_end(epoch: int, step: int) -> bool:
        """Grid, checkpoints, FID, plot; True stops training (FID patience spent). The
        training state is written before the evaluation: a kill during a long CPU
        evaluation loses the evaluation (redone on resume), never the epoch."""
        if guard.should_stop:
            return True  # e.g. NaN in the epoch's last window: nothing of this state is worth keeping
        every = conf.output.sample_every
        if every and (epoch % every == 0 or epoch == conf.epochs):
            save_image_grid(sample(shown, fixed_noise), samples_dir / f"epoch_{epoch:03d}.png", conf.output.nrow)
        seconds = time.perf_counter() - epoch_clock[0]
        loss_d, loss_g, d_x, d_gz = latest_row[0][2:]
        skipped = scaling.skipped() if scaling.enabled else None
        log.info("epoch %d/%d done in %.1fs | step %d | loss_D %.5f loss_G %.5f D(x) %.5f D(G(z)) %.5f%s", epoch,
                 conf.epochs, seconds, step, loss_d, loss_g, d_x, d_gz,
                 f" | fp16 steps skipped (inf/NaN gradients) so far: D {skipped['D']}, G {skipped['G']}"
                 if skipped else "")
        save_epoch_states(epoch, step)
        plot_losses(metrics.path, run_dir / "losses.png")
        epoch_clock[0] = time.perf_counter()
        if evaluator is not None and evaluator.tracker.exhausted and epoch < conf.epochs:
            log.info("FID has not improved for %d evaluations; stopping early (best %.2f at epoch %d: "
                     "checkpoints/best.pt)", conf.eval.patience, evaluator.tracker.best_fid, evaluator.tracker.best_epoch)
            return True
        return False

    if use_compile(conf, device):  # in place: state_dict keys, EMA and checkpoints stay as in eager mode
        generator.compile()
        discriminator.compile()
    started = time.perf_counter()
    budget_s = conf.train.max_minutes * 60
    out_of_time = [False]
    latest_row = [None]  # the newest metrics row, for the epoch log line

    def on_metrics(rows) -> bool:
        """Append to metrics.csv; True stops the loop (NaN/inf, collapse with guard=stop, or time budget spent)."""
        metrics.append(rows)
        latest_row[0] = rows[-1]
        stop = guard.observe(rows)
        if budget_s and time.perf_counter() - started >= budget_s and not out_of_time[0]:
            out_of_time[0] = True
            log.info("time budget of %g minutes spent at step %d; stopping", conf.train.max_minutes, int(rows[-1][1]))
        return stop or out_of_time[0]

    step = train(
        generator=generator, discriminator=discriminator, opt_g=opt_g, opt_d=opt_d, loss=loss, bank=bank, rng=rng,
        epochs=conf.epochs, batch_size=conf.batch_size, nz=conf.model.nz, d_steps=conf.train.d_steps,
        g_steps=conf.train.g_steps, instance_noise=conf.train.instance_noise,
        instance_noise_epochs=conf.train.instance_noise_epochs, augment=augment,
        r1_gamma=conf.loss.r1_gamma, r1_every=conf.loss.r1_every, ema=ema, seed=conf.seed, start_epoch=start_epoch,
        start_step=start_step, start_step_in_epoch=start_step_in_epoch, autocast_dtype=autocast_dtype,
        scaling=scaling, channels_last=channels_last, log_every=conf.train.log_every, on_metrics=on_metrics,
        on_epoch_end=on_epoch_end, on_step_checkpoint=lambda e, s, k: save_state(ckpt_dir / "last.pt", e, s, k),
        every_n_steps=conf.checkpoint.every_n_steps, show_progress=show_progress,
    )
    elapsed = time.perf_counter() - started
    done_images = (step - start_step) * conf.batch_size
    mid_epoch = step % bank.batches_per_epoch(conf.batch_size) != 0
    if mid_epoch and conf.output.sample_every and not guard.nonfinite_step:
        # stopped inside an epoch: its last grid is older than the state
        save_image_grid(sample(shown, fixed_noise), samples_dir / "final.png", conf.output.nrow)
    if conf.output.sample_every and any(samples_dir.glob("*.png")):
        write_timelapse(samples_dir)
    log.info("trained %d steps in %.1fs (%.0f images/s)", step - start_step, elapsed, done_images / max(elapsed, 1e-9))
    if guard.diverged:
        raise AnimeganError(f"training diverged ({guard.reason}); no generator exported. checkpoints/last.pt holds the "
                            "last good state: resume it with a lower lr, label smoothing, or another loss")
    export = ckpt_dir / conf.checkpoint.export
    ckpt.save_checkpoint(ckpt.generator_export(shown, config_dict["model"], epochs=conf.epochs, config=config_dict), export)
    log.info("generator%s exported to %s", " (EMA weights)" if ema is not None else "", export)
    if evaluator is not None and evaluator.tracker.best_fid is not None:
        log.info("best FID %.2f at epoch %d: %s", evaluator.tracker.best_fid, evaluator.tracker.best_epoch,
                 ckpt_dir / "best.pt")
    return export


class TrainingEvaluator:
    """FID/KID during training (eval.every_n_epochs): the extractor and the reference
    features are made once, before the first step, so a missing weights file stops the
    run at once instead of after the first epoch."""

    def __init__(self, conf: TrainConfig, bank, device: torch.device):
        self.conf = conf.eval
        with torch.random.fork_rng(devices=[]):  # the extractor's init must not shift the run's random stream
            try:
                self.extractor = fidelity.build_extractor(conf.eval, device)
            except AnimeganError as exc:
                raise AnimeganError(f"{exc}; or train without FID: eval.every_n_epochs=0") from None
        self.reference = fidelity.reference_features(bank.images, self.extractor, conf.eval, conf.dataset.name)
        self.tracker = FidTracker(conf.eval.patience)

    def evaluate(self, generator: torch.nn.Module, epoch: int, step: int, metrics: MetricsLog) -> bool:
        """Evaluate, log to metrics.csv and the log; True when this is the best FID so far."""
        result = fidelity.evaluate(generator, self.reference, self.extractor, self.conf, self.conf.n)
        metrics.append_eval(epoch, step, result["fid"], result["kid"], result["kid_std"])
        improved = self.tracker.observe(epoch, result["fid"])
        log.info("epoch %d: FID %.2f, KID %.4f +- %.4f (%d generated vs %d real, %.0fs) | %s%s", epoch, result["fid"],
                 result["kid"], result["kid_std"], self.conf.n, result["protocol"]["n_real"], result["seconds"],
                 self.tracker.trend(), " | new best: checkpoints/best.pt" if improved else "")
        return improved


def _stabilisers(conf: TrainConfig) -> list:
    m, t, out = conf.model, conf.train, []
    if m.d_spectral_norm or m.g_spectral_norm:
        out.append("spectral norm in " + " and ".join(n for n, on in (("D", m.d_spectral_norm), ("G", m.g_spectral_norm)) if on))
    if m.minibatch_std:
        out.append("minibatch std")
    if t.ema:
        out.append(f"EMA of G (decay {t.ema_decay:g})")
    if t.diffaugment:
        out.append(f"DiffAugment {','.join(t.diffaugment)}")
    if conf.loss.real_label < 1:
        smoothing = conf.loss.name in ("bce", "lsgan")
        out.append(f"label smoothing {conf.loss.real_label:g}" + ("" if smoothing else f" (ignored by {conf.loss.name})"))
    if t.instance_noise:
        out.append(f"instance noise {t.instance_noise:g}")
    return out


def sample(generator: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Images for `z` from G in eval mode (BatchNorm running statistics), fp32, no autograd."""
    with eval_mode(generator):
        return generator(z).float()
