"""`validate`: a composed config checked against the schema (animegan.config), then its
ranges and the combinations that cannot work.

Every problem is one AnimeganError line naming the key and what is allowed. The upper
bounds keep memory and time finite whatever a config says: a typo of 10^6 for 10^2 is
one line, not an out-of-memory kill minutes later.
"""

from __future__ import annotations

import re
from typing import Any, List

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from animegan.choices import AUGMENTATIONS, LOSSES, OPTIMIZERS, PRECISIONS
from animegan.config import ModelConfig, RunConfig, describe_omegaconf_error, from_checkpoint
from animegan.errors import AnimeganError

IMAGE_SIZES = (16, 32, 64, 128, 256)  # powers of two a DCGAN stack can make from 4x4
DATASET_KINDS = ("synthetic", "folder")
GUARDS = ("off", "warn", "stop")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")  # cuda:N picks one of several GPUs
TRISTATE = ("auto", "true", "false")
# Bounds that keep memory and time finite whatever a config says (a typo of 10^6 for 10^2
# should be one line, not an out-of-memory kill minutes later).
MAX_BATCH = 65536
MAX_SEED = 2**32 - 1
MAX_WIDTH = 4096  # nz, ngf, ndf
MAX_PARAMETERS = 500_000_000  # per network: 2 GB of fp32 weights, 8 GB with Adam's moments
MAX_SYNTHETIC_BYTES = 8 * 2**30  # the synthetic faces live in memory as uint8
MAX_SAMPLES = 1024  # images in one grid
MAX_EVAL_IMAGES = 1_000_000


def validate(cfg: Any) -> RunConfig:
    """Check a composed config (DictConfig or dict) and return it as a RunConfig."""
    # A plain copy: a composed config is typed by the schema already, and keys added with
    # `+key=value` would slip through a merge of two structured configs.
    raw = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), raw)
        conf: RunConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise AnimeganError(describe_omegaconf_error(exc)) from None
    check_values(conf)
    return conf


def validate_model(model: dict, source: str = "") -> ModelConfig:
    """A model config read from a checkpoint, checked before a network is built from it
    (a file from elsewhere may ask for any size)."""
    try:
        conf = validate({"model": from_checkpoint({"model": dict(model)})["model"]})
    except AnimeganError as exc:
        raise AnimeganError(f"{source}: its model config is refused ({exc})" if source else str(exc)) from None
    return conf.model


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise AnimeganError(f"config key '{key}' = {value!r} is invalid: {allowed}")


def check_values(c: RunConfig) -> None:
    ge1 = "must be an integer >= 1"
    _require(c.epochs >= 1, "epochs", c.epochs, ge1)
    _require(1 <= c.batch_size <= MAX_BATCH, "batch_size", c.batch_size, f"must be an integer from 1 to {MAX_BATCH}")
    _require(0 <= c.seed <= MAX_SEED, "seed", c.seed, f"must be an integer from 0 to {MAX_SEED}")
    _require(DEVICE_PATTERN.fullmatch(str(c.device)) is not None, "device", c.device,
             "allowed: auto, cpu, cuda, cuda:N (N: the GPU's index)")

    d = c.dataset
    _require(d.kind in DATASET_KINDS, "dataset.kind", d.kind, f"allowed: {', '.join(DATASET_KINDS)}")
    if d.kind == "synthetic":
        _require(d.num_images >= 1, "dataset.num_images", d.num_images, ge1)
        if c.model.image_size in IMAGE_SIZES:  # (a wrong size is reported below, as the model's)
            limit = MAX_SYNTHETIC_BYTES // (3 * c.model.image_size**2)
            _require(d.num_images <= limit, "dataset.num_images", d.num_images,
                     f"at most {limit} faces of {c.model.image_size} px fit the {MAX_SYNTHETIC_BYTES // 2**30} GiB "
                     "the synthetic set may take in memory")
    _require(d.workers >= 0, "dataset.workers", d.workers, "must be >= 0 (0: one per CPU core, at most 8)")
    _only_for(d, FOLDER_ONLY, d.kind == "folder", "dataset", "folder datasets (dataset=folder or a preset)")
    _only_for(d, ("num_images",), d.kind == "synthetic", "dataset", "dataset=synthetic")
    if d.kind == "folder":
        _require(bool(d.root), "dataset.root", d.root, "set it to the folder of images: dataset.root=/path/to/images")
        _require(d.min_size >= 0, "dataset.min_size", d.min_size, "must be >= 0 pixels (0: keep all sizes)")
        _require(d.crop in d.CROPS, "dataset.crop", d.crop, f"allowed: {', '.join(d.CROPS)}")
        _require(d.resize_filter in d.RESIZE_FILTERS, "dataset.resize_filter", d.resize_filter,
                 f"allowed: {', '.join(d.RESIZE_FILTERS)}")
        _require(0 <= d.near_dedupe_distance <= 64, "dataset.near_dedupe_distance", d.near_dedupe_distance,
                 "must be 0-64 differing bits (4 finds resized or re-encoded copies)")
        _require(d.cache_dir is None or bool(str(d.cache_dir).strip()), "dataset.cache_dir", d.cache_dir,
                 "a folder path, or null for the default")

    m = c.model
    sizes = ", ".join(map(str, IMAGE_SIZES))
    _require(m.image_size in IMAGE_SIZES, "model.image_size", m.image_size, f"a DCGAN makes {sizes}")
    for key in ("nz", "ngf", "ndf"):
        _require(1 <= getattr(m, key) <= MAX_WIDTH, f"model.{key}", getattr(m, key),
                 f"must be an integer from 1 to {MAX_WIDTH}")
    for net, count in zip(("generator", "discriminator"), estimated_parameters(m)):
        _require(count <= MAX_PARAMETERS, "model.ngf" if net == "generator" else "model.ndf",
                 m.ngf if net == "generator" else m.ndf,
                 f"the {net} would have {count / 1e6:,.0f}M parameters at {m.image_size} px (at most "
                 f"{MAX_PARAMETERS // 10**6}M); use a smaller width")
    _require(0.0 <= m.d_dropout < 1.0, "model.d_dropout", m.d_dropout, "must be in [0, 1)")
    _require(0.0 <= m.leaky_slope < 1.0, "model.leaky_slope", m.leaky_slope, "must be in [0, 1)")
    _require(0.0 <= m.g_dropout < 1.0, "model.g_dropout", m.g_dropout, "must be in [0, 1)")
    _require(0.0 <= m.g_leaky_slope < 1.0, "model.g_leaky_slope", m.g_leaky_slope, "must be in [0, 1) (0: ReLU)")

    o = c.optimizer
    _require(o.name in OPTIMIZERS, "optimizer.name", o.name, f"allowed: {', '.join(OPTIMIZERS)}")
    for key in ("lr", "lr_g", "lr_d"):
        value = getattr(o, key)
        _require(value is None or value > 0, f"optimizer.{key}", value, "must be a number > 0")
    _require(
        len(o.betas) == 2 and all(0.0 <= b < 1.0 for b in o.betas),
        "optimizer.betas", list(o.betas), "must be two numbers in [0, 1), e.g. [0.5, 0.999]",
    )
    _require(o.momentum >= 0, "optimizer.momentum", o.momentum, "must be >= 0")
    _only_for_choices(o, OPTIMIZERS, "optimizer")
    _require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "must be >= 0")
    _require(0.0 <= o.decay_start <= 1.0, "optimizer.decay_start", o.decay_start,
             "must be in [0, 1]: the fraction of the run before the lr falls (1: constant lr)")
    _require(0.0 <= o.decay_to <= 1.0, "optimizer.decay_to", o.decay_to, "must be in [0, 1]: a fraction of lr")

    _require(c.loss.name in LOSSES, "loss.name", c.loss.name, f"allowed: {', '.join(LOSSES)}")
    _require(0.5 < c.loss.real_label <= 1.0, "loss.real_label", c.loss.real_label, "must be in (0.5, 1], e.g. 0.9")
    _require(c.loss.gp_weight >= 0, "loss.gp_weight", c.loss.gp_weight, "must be >= 0")
    _only_for_choices(c.loss, LOSSES, "loss")
    _require(c.loss.r1_gamma >= 0, "loss.r1_gamma", c.loss.r1_gamma, "must be >= 0 (0: off)")
    _require(c.loss.penalty_every >= 1, "loss.penalty_every", c.loss.penalty_every, ge1)
    _require(c.loss.r2_gamma >= 0, "loss.r2_gamma", c.loss.r2_gamma, "must be >= 0 (0: off)")

    t = c.train
    _require(1 <= t.d_steps <= 100, "train.d_steps", t.d_steps, "must be an integer from 1 to 100")
    _require(1 <= t.g_steps <= 100, "train.g_steps", t.g_steps, "must be an integer from 1 to 100")
    _require(1 <= t.log_every <= 10000, "train.log_every", t.log_every, "must be an integer from 1 to 10000")
    _require(t.instance_noise >= 0, "train.instance_noise", t.instance_noise, "must be >= 0 (0: off)")
    _require(t.instance_noise_epochs > 0, "train.instance_noise_epochs", t.instance_noise_epochs, "must be > 0")
    _require(t.ema_kimg > 0, "train.ema_kimg", t.ema_kimg, "must be > 0 thousand images, e.g. 10")
    _require(0.0 <= t.ema_rampup <= 1.0, "train.ema_rampup", t.ema_rampup,
             "must be in [0, 1]: the half-life is at most this fraction of the images seen (0: no ramp), e.g. 0.05")
    _require(t.ema_calibration_images >= 2, "train.ema_calibration_images", t.ema_calibration_images,
             "must be an integer >= 2 (BatchNorm needs two faces for a statistic), e.g. 1024")
    _require(all(p in AUGMENTATIONS for p in t.diffaugment) and len(set(t.diffaugment)) == len(t.diffaugment),
             "train.diffaugment", list(t.diffaugment),
             f"a list of distinct transforms from {', '.join(AUGMENTATIONS)} ([]: off), "
             "e.g. train.diffaugment=[color,translation,cutout]")
    _require(t.guard in GUARDS, "train.guard", t.guard, f"allowed: {', '.join(GUARDS)}")
    _require(t.guard_patience >= 1, "train.guard_patience", t.guard_patience, ge1)
    _require(t.max_minutes >= 0, "train.max_minutes", t.max_minutes, "must be >= 0 minutes (0: no limit)")
    _require(t.precision in PRECISIONS, "train.precision", t.precision, f"allowed: {', '.join(PRECISIONS)}")
    _require(
        str(t.channels_last).lower() in TRISTATE, "train.channels_last", t.channels_last, "allowed: auto, true, false"
    )
    _require(str(t.compile).lower() in TRISTATE, "train.compile", t.compile, "allowed: auto, true, false")
    if str(t.compile).lower() == "true" and double_backward(c):
        raise AnimeganError("train.compile=true cannot train with a gradient penalty (loss=wgan_gp, loss.r1_gamma or "
                            "loss.r2_gamma > 0): "
                            "torch.compile does not differentiate twice; use train.compile=false")

    out = c.output
    _require(out.sample_every >= 0, "output.sample_every", out.sample_every, "must be >= 0 (0: no grids)")
    _require(1 <= out.n_samples <= MAX_SAMPLES, "output.n_samples", out.n_samples,
             f"must be an integer from 1 to {MAX_SAMPLES} (images in one grid)")
    _require(out.nrow >= 1, "output.nrow", out.nrow, ge1)

    k = c.checkpoint
    _require(k.keep_every >= 0, "checkpoint.keep_every", k.keep_every, "must be >= 0 (0: off)")
    _require(k.every_n_steps >= 0, "checkpoint.every_n_steps", k.every_n_steps, "must be >= 0 (0: off)")
    _require(k.snapshot_every >= 0, "checkpoint.snapshot_every", k.snapshot_every, "must be >= 0 (0: off)")
    _require(all(m > 0 for m in k.snapshot_minutes) and len(set(k.snapshot_minutes)) == len(k.snapshot_minutes),
             "checkpoint.snapshot_minutes", list(k.snapshot_minutes), "a list of distinct minutes > 0, e.g. [5,15,30] "
             "([]: off)")
    _require(
        bool(k.export) and "/" not in k.export and k.export.endswith(".pt"),
        "checkpoint.export", k.export, "a file name ending in .pt (written in <run>/checkpoints/)",
    )

    e = c.eval
    _require(e.every_n_epochs >= 0, "eval.every_n_epochs", e.every_n_epochs, "must be >= 0 (0: no evaluation while training)")
    _require(2 <= e.n <= MAX_EVAL_IMAGES, "eval.n", e.n,
             f"must be 2 to {MAX_EVAL_IMAGES} generated images (FID needs a covariance; 10000 is usual)")
    _require(e.n_real >= 0, "eval.n_real", e.n_real, "must be >= 0 (0: every image of the dataset)")
    _require(e.n_real != 1, "eval.n_real", e.n_real, "must be 0 (all) or >= 2 images")
    _require(e.patience >= 0, "eval.patience", e.patience, "must be >= 0 evaluations (0: never stop early)")
    _require(bool(e.feature_extractor), "eval.feature_extractor", e.feature_extractor, "a torch-fidelity feature "
             "extractor name, e.g. inception-v3-compat")
    _require(e.download_timeout > 0, "eval.download_timeout", e.download_timeout, "must be > 0 seconds")
    _require(e.kid_subset_size >= 2, "eval.kid_subset_size", e.kid_subset_size, "must be >= 2 images")
    _require(1 <= e.kid_subsets <= 10000, "eval.kid_subsets", e.kid_subsets, "must be an integer from 1 to 10000")
    _require(1 <= e.batch_size <= 4096, "eval.batch_size", e.batch_size, "must be an integer from 1 to 4096")
    _require(e.seed >= 0, "eval.seed", e.seed, "must be an integer >= 0")
    if c.logger.tensorboard is not None:
        _require(c.logger.tensorboard.flush_secs >= 1, "logger.tensorboard.flush_secs", c.logger.tensorboard.flush_secs,
                 "must be >= 1 second")


# Dataset keys that only the folder pipeline reads (the synthetic faces are drawn, not decoded).
FOLDER_ONLY = ("root", "min_size", "crop", "resize_filter", "dedupe", "near_dedupe", "near_dedupe_distance", "cache_dir")


def _only_for(section: Any, keys, applies: bool, prefix: str, where: str) -> None:
    """Refuse keys that the chosen option would silently ignore: a key set away from its
    schema default where it does not apply is a mistake the user should hear about."""
    if applies:
        return
    defaults = type(section)()
    for key in keys:
        value = getattr(section, key)
        if value != getattr(defaults, key):
            raise AnimeganError(f"config key '{prefix}.{key}' = {value!r} applies to {where} only and would be "
                                f"ignored here; remove it")


def _only_for_choices(section: Any, choices: dict, prefix: str) -> None:
    """The keys that only some choices read (a registry entry's options), refused for the
    others when set away from the schema's default."""
    for key in sorted({key for choice in choices.values() for key in choice.options}):
        readers = [name for name, choice in choices.items() if key in choice.options]
        _only_for(section, (key,), section.name in readers, prefix,
                  " and ".join(f"{prefix}={name}" for name in readers))


def double_backward(c: RunConfig) -> bool:
    """True when D's loss differentiates D's gradient (WGAN-GP's penalty, R1)."""
    return c.loss.name == "wgan_gp" or c.loss.r1_gamma > 0 or c.loss.r2_gamma > 0


def config_warnings(c: RunConfig) -> List[str]:
    """Combinations that run but probably not as meant; logged when a run starts."""
    out = []
    # R1 with BatchNorm in D is the real-data default (measured: docs/recipes.md); WGAN-GP's
    # penalty on points between real and fake images assumes a critic without BatchNorm.
    if c.loss.name == "wgan_gp" and c.model.d_batchnorm:
        out.append("loss=wgan_gp with BatchNorm in D: the gradient penalty is per sample, but BatchNorm mixes the "
                   "samples of a batch; set model.d_batchnorm=false")
    return out


def estimated_parameters(m: ModelConfig):
    """(generator, discriminator) weight counts of the DCGAN a model config describes,
    from the layer shapes alone: checked before anything is built."""
    stages = max(m.image_size.bit_length() - 3, 1)  # image_size = 4 * 2**stages
    width = m.ngf * 2 ** (stages - 1)
    g = m.nz * width * 16
    for _ in range(stages - 1):
        g, width = g + width * (width // 2) * 16, width // 2
    g += width * 3 * 16
    width, d = m.ndf, 3 * m.ndf * 16
    for _ in range(stages - 1):
        d, width = d + width * width * 2 * 16, width * 2
    return g, d + width * 16
