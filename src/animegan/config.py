"""Dataclass schemas of every config group, and the check that runs before any work.

Hydra composes plain YAML (configs/) on top of these schemas; `animegan.config_checks.validate`
merges the result into them, so an unknown key or a wrong type is caught, then checks each
value's range. Every problem becomes one AnimeganError line naming the key and what is
allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException


@dataclass
class DatasetConfig:
    name: str = "synthetic"
    kind: str = "synthetic"  # synthetic | folder
    root: Optional[str] = None  # folder datasets: where the images are
    num_images: int = 12000  # synthetic only: how many faces to draw
    flip: bool = True  # random horizontal flip, applied to each batch
    source: str = ""  # folder presets: how to obtain the data (shown when it is missing)
    # Folder datasets are decoded once per resolution into a cache (animegan.data.cache);
    # every option below is part of the cache key: changing one rebuilds the cache.
    min_size: int = 32  # drop images whose short side is below this many pixels (0: keep all)
    crop: str = "center"  # center: central square, resized | resize: whole image squashed to a square
    resize_filter: str = "lanczos"  # anti-aliased resampling filter
    dedupe: bool = True  # drop byte-identical files (the first in path order is kept)
    near_dedupe: bool = False  # drop perceptual near-duplicates (64-bit difference hash)
    near_dedupe_distance: int = 4  # near_dedupe: max differing hash bits (0-64) that count as a duplicate
    cache_dir: Optional[str] = None  # None: <root>/.animegan-cache, or ~/.cache/animegan when read-only
    workers: int = 0  # processes that decode a folder (first preparation) or draw the synthetic faces (0: one per CPU core, at most 8)

    # Allowed values; class constants, not config keys (no annotation: not dataclass fields).
    CROPS = ("center", "resize")
    RESIZE_FILTERS = ("lanczos", "bicubic", "hamming", "bilinear", "box")


@dataclass
class ModelConfig:
    image_size: int = 64
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    d_dropout: float = 0.0
    leaky_slope: float = 0.2  # LeakyReLU slope in D
    g_dropout: float = 0.0  # dropout after each hidden generator block (0: off)
    g_leaky_slope: float = 0.0  # 0: ReLU in G (the paper); > 0: LeakyReLU with this slope
    d_spectral_norm: bool = False  # spectral normalisation of every D convolution
    g_spectral_norm: bool = False  # ... and of every G convolution
    d_batchnorm: bool = True  # BatchNorm in D's hidden blocks (SNGAN-style D: off with spectral norm)
    g_batchnorm: bool = True  # BatchNorm in G's hidden blocks (the paper's G has it)
    sync_batchnorm: bool = False  # several GPU processes: BatchNorm statistics over the global batch (SyncBatchNorm)
    minibatch_std: bool = False  # D sees the batch's feature std as an extra channel (against look-alike faces)


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 2e-4
    lr_g: Optional[float] = None  # generator lr; None = lr
    lr_d: Optional[float] = None  # discriminator lr; None = lr
    betas: List[float] = field(default_factory=lambda: [0.5, 0.999])  # adam only (refused for the others)
    momentum: float = 0.0  # sgd / rmsprop only (refused for adam)
    weight_decay: float = 0.0
    decay_start: float = 1.0  # fraction of the run after which both lrs fall linearly ... (1: constant lr)
    decay_to: float = 0.0  # ... to this fraction of lr at the run's last step


@dataclass
class LossConfig:
    name: str = "bce"
    real_label: float = 1.0  # D's target for real images; 0.9 = one-sided label smoothing (bce, lsgan; others ignore it)
    gp_weight: float = 10.0  # wgan_gp: lambda of the gradient penalty (refused for the other losses)
    r1_gamma: float = 0.0  # R1 penalty gamma/2 * E|grad D(x)|^2 on real images (0: off); any loss
    penalty_every: int = 1  # lazy R1 and R2: apply them every N steps, scaled by N
    r2_gamma: float = 0.0  # R2 penalty gamma/2 * E|grad D(G(z))|^2 on fake images (0: off); any loss


@dataclass
class LoopConfig:
    d_steps: int = 1  # discriminator updates per batch
    g_steps: int = 1  # generator updates per batch
    log_every: int = 25  # steps between reads of the losses (progress bar, metrics.csv)
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs, decayed linearly to 0 ...
    instance_noise_epochs: float = 6.0  # ... over this many epochs (a fixed horizon keeps resume exact)
    # auto | fp32 | bf16 | fp16 (autocast; fp16 with loss scaling). auto: bf16 where the hardware has it (CUDA
    # compute capability 8.0+, CPUs with AVX512-BF16/AMX), fp16 on older CUDA GPUs with tensor cores, else fp32
    precision: str = "auto"
    channels_last: str = "auto"  # auto | true | false: NHWC memory layout for the convolutions (auto: on)
    compile: str = "auto"  # torch.compile G and D: auto | true | false (auto: off, see run.use_compile)
    keep_freed_memory: bool = True  # CPU: glibc keeps freed buffers for reuse (animegan.malloc_tuning)
    # an exponential moving average of G's weights for grids and the export (measured better
    # than the raw weights from 30 minutes on: docs/recipes.md)
    ema: bool = True
    ema_kimg: float = 10.0  # half-life of the average in thousands of images ...
    ema_rampup: float = 0.05  # ... but at most this fraction of the images seen so far (0: no ramp)
    ema_calibration_images: int = 1024  # generated faces the average's BatchNorm statistics come from (ema.CALIBRATION_IMAGES)
    diffaugment: List[str] = field(default_factory=list)  # DiffAugment on D's inputs: [color, translation, cutout] ([]: off)
    guard: str = "warn"  # divergence guard: off | warn | stop (NaN/inf losses or D ~0 while G explodes)
    guard_patience: int = 100  # collapse = this many consecutive steps with both conditions below
    guard_d_loss: float = 1e-3  # collapse condition: |loss_D| below this ...
    guard_g_loss: float = 10.0  # ... while loss_G is above this
    max_minutes: float = 0.0  # wall-clock budget: stop (with a checkpoint) after this many minutes (0: none)


@dataclass
class OutputConfig:
    sample_every: int = 1  # write samples/epoch_XXX.png every N epochs (0: no grids)
    n_samples: int = 64  # images in each sample grid (fixed noise)
    nrow: int = 8  # images per row of the sample grid


@dataclass
class CheckpointConfig:
    keep_every: int = 0  # also keep the full training state as epoch_XXX.pt every N epochs (0: off)
    every_n_steps: int = 0  # refresh last.pt every N steps inside an epoch (0: only at epoch ends)
    snapshot_every: int = 5  # snapshots/generator-epoch_XXX.pt (the shown generator only) every N epochs (0: off)
    snapshot_minutes: List[float] = field(default_factory=list)  # ... and at these minutes of training: generator-5min.pt
    export: str = "generator.pt"  # the generator-only file written at the end, for animegan-sample


@dataclass
class EvalConfig:
    every_n_epochs: int = 0  # training: FID/KID every N epochs, keeping checkpoints/best.pt (0: off)
    n: int = 10000  # generated images per evaluation (the literature's FID uses 50000)
    n_real: int = 0  # real images in the reference statistics (0: the whole dataset)
    patience: int = 0  # training: stop after this many evaluations without a better FID (0: never)
    feature_extractor: str = "inception-v3-compat"  # a torch-fidelity extractor; the standard FID network
    inception_weights: Optional[str] = None  # path of weights-inception-2015-12-05-6726825d.pth (None: torch hub cache, downloaded once)
    download_timeout: float = 30.0  # seconds without progress before a weights download gives up
    stats_dir: Optional[str] = None  # reference feature cache (None: ~/.cache/animegan/fid-reference)
    kid_subset_size: int = 1000  # images per KID subset (capped at n and n_real)
    kid_subsets: int = 100  # KID subsets averaged (mean +- std reported)
    batch_size: int = 64  # images through the feature extractor at a time
    seed: int = 0  # latent seed of the generated images (and of the KID subsets)


@dataclass
class CsvLoggerConfig:
    plot: bool = True  # redraw losses.png from metrics.csv every epoch


@dataclass
class TensorBoardLoggerConfig:
    flush_secs: int = 30  # how often the event file is written to disk


@dataclass
class LoggerConfig:
    """Each sink is on when its section is present (configs/logger/: csv, tensorboard, none)."""

    csv: Optional[CsvLoggerConfig] = None
    tensorboard: Optional[TensorBoardLoggerConfig] = None


@dataclass
class RunConfig:
    """The config of one run, as `animegan-train` composes it (`train:` is the loop's section)."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    epochs: int = 40  # passes over the dataset
    batch_size: int = 32  # at equal time, more and smaller steps drew better faces than 64-128
    seed: int = 0  # seeds weights, batch order, flips and latent noise
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    resume: Optional[str] = None  # a training checkpoint (last.pt) to continue from; auto: the run directory's newest
    resume_new_order: bool = False  # resume although batch_size, seed or the data changed (a new batch order)


def to_dict(conf: RunConfig) -> dict:
    """Plain nested dict (only str/int/float/bool/None/list): safe for weights_only loads."""
    return OmegaConf.to_container(OmegaConf.structured(conf), resolve=True)  # type: ignore[return-value]


def describe_omegaconf_error(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or "?"
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "not in" in first_line and "Key" in first_line:
        parent, _, leaf = key.rpartition(".")
        node = RunConfig() if not parent else _schema_node(parent)
        known = ", ".join(sorted(vars(node))) if node is not None else "see configs/"
        return f"config key '{key}' is unknown; keys allowed there: {known}"
    if "MISSING" in first_line or "Missing mandatory value" in first_line:
        return f"config key '{key}' must be set (e.g. {key}=...)"
    return f"config key '{key}' has a wrong type: {first_line}"


def _schema_node(path: str) -> Any:
    node: Any = RunConfig()
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None or not hasattr(node, "__dataclass_fields__"):
            return None
    return node


def from_checkpoint(saved: dict) -> dict:
    """A config saved in a checkpoint, brought to today's schema (a copy): keys that older
    versions wrote and this one no longer has are dropped."""
    import copy

    import math

    saved = copy.deepcopy(saved)
    saved.get("model", {}).pop("name", None)  # the model group's name: never used, now refused
    train = saved.get("train", {})
    if "ema_decay" in train:  # a fixed decay per G step: the same half-life, counted in images, without a ramp
        decay = float(train.pop("ema_decay"))
        train["ema_kimg"] = math.log(0.5) / math.log(decay) * int(saved.get("batch_size", 128)) / 1000
        train["ema_rampup"] = 0.0
    loss = saved.get("loss", {})
    if "r1_every" in loss:  # renamed: it paces R2 as well
        loss["penalty_every"] = loss.pop("r1_every")
    return saved



PATH_KEYS = ("dataset.root", "dataset.cache_dir", "eval.inception_weights", "eval.stats_dir", "resume")


def with_absolute_paths(conf: RunConfig, base: str) -> RunConfig:
    """Make the config's relative paths absolute against `base` (the directory the command
    was started in), in place: the config saved in a checkpoint then means the same files
    when a resume or an evaluation starts from another directory."""
    import os

    for dotted in PATH_KEYS:
        section, _, key = dotted.rpartition(".")
        node = getattr(conf, section) if section else conf
        value = getattr(node, key)
        if value:
            setattr(node, key, os.path.normpath(os.path.join(base, os.path.expanduser(str(value)))))
    return conf


SCHEMA_NAME = "animegan_schema"


def register_schema() -> None:
    """Store RunConfig in Hydra's ConfigStore as the base of configs/train.yaml: every key
    the schema knows can then be set on the command line, also one that the chosen group's
    YAML does not list (dataset=folder dataset.workers=2, loss=hinge loss.r1_gamma=1)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    if f"{SCHEMA_NAME}.yaml" not in store.repo:  # once per process: storing converts the whole dataclass
        store.store(name=SCHEMA_NAME, node=RunConfig)
