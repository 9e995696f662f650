"""FID and KID of a generator against a dataset, with torch-fidelity's feature extractors.

torch-fidelity owns the science: the Inception-v3 network (the TF1 graph's weights and
its TF1-compatible resize to 299 px), the Fréchet distance and the unbiased KID
estimator. This module owns the plumbing around it:
- finding the extractor's weights (eval.inception_weights, else torch hub's cache, else
  one download with a bounded timeout); offline, one line says which file to put where;
- streaming uint8 images (generated in chunks, or the dataset's bank) through it;
- caching the real images' features per (dataset content, resolution, extractor,
  weights, n_real), loaded with weights_only=True like every other .pt we read;
- the protocol record that says what a number was measured under.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Dict, Iterable, Optional

import torch

from animegan.checkpoint import save_checkpoint
from animegan.data.bank import images_fingerprint
from animegan.errors import AnimeganError

log = logging.getLogger(__name__)

INCEPTION = "inception-v3-compat"  # torch-fidelity's name for the standard FID network
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[1]
REFERENCE_FORMAT = "animegan-fid-reference"
REFERENCE_VERSION = 1
RESIZE = {INCEPTION: "bilinear, TF1-compatible (torch-fidelity), to 299x299 from the image size"}


def default_inception_path() -> Path:
    """Where torch-fidelity itself looks for the weights: torch hub's checkpoint cache
    ($TORCH_HOME/hub/checkpoints, ~/.cache/torch/hub/checkpoints by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def missing_weights_message(wanted: Path, reason: str) -> str:
    return (f"FID/KID need the Inception-v3 weights file {INCEPTION_FILE}, which is not at {wanted} and could not "
            f"be downloaded ({reason}). On a machine with internet fetch {INCEPTION_URL} , copy it to {wanted} "
            f"(or anywhere, then pass eval.inception_weights=/path/to/{INCEPTION_FILE})")


def resolve_inception_weights(path: Optional[str], download_timeout: float = 30.0) -> Path:
    """The Inception weights file to use; downloads it once into torch hub's cache when
    no path is configured. Raises AnimeganError (one line) instead of a traceback or a hang."""
    if path:
        weights = Path(path).expanduser()
        if not weights.is_file():
            raise AnimeganError(f"eval.inception_weights={path} does not exist; download {INCEPTION_URL} "
                                "there or point the key at the file")
    else:
        weights = default_inception_path()
        if not weights.is_file():
            _download(INCEPTION_URL, weights, download_timeout)
    _check_plain_weights(weights)
    return weights


def _download(url: str, dest: Path, timeout: float) -> None:
    log.info("downloading the Inception-v3 weights for FID/KID to %s (once)", dest)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # bounds every connect and read torch.hub makes: no hang
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dest), progress=True)  # writes a temp file, then renames
    except Exception as exc:  # URLError, timeouts, HTTP errors, a read-only cache: all mean the same to the user
        reason = str(getattr(exc, "reason", "") or exc).splitlines()[0] or type(exc).__name__
        raise AnimeganError(missing_weights_message(dest, reason)) from None
    finally:
        socket.setdefaulttimeout(previous)


def _check_plain_weights(path: Path) -> None:
    """torch-fidelity loads the file with weights_only=False; load it safely first, so a
    file that holds code is refused before torch-fidelity ever unpickles it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AnimeganError(f"{path} is not a plain weights file ({reason[:160]}); use {INCEPTION_FILE} "
                            f"from {INCEPTION_URL}") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise AnimeganError(f"{path} is not a state_dict of tensors; use {INCEPTION_FILE} from {INCEPTION_URL}")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FeatureExtractor:
    """A torch-fidelity feature extractor on `device`, fed uint8 images [N, 3, S, S]."""

    def __init__(self, name: str, device: torch.device, weights: Optional[Path] = None, batch_size: int = 64,
                 progress: bool = False):
        import torch_fidelity  # noqa: F401  (registers the library's extractors)
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

        if name not in FEATURE_EXTRACTORS_REGISTRY:
            raise AnimeganError(f"eval.feature_extractor '{name}' is not a torch-fidelity feature extractor; "
                                f"available: {', '.join(sorted(FEATURE_EXTRACTORS_REGISTRY))}")
        cls = FEATURE_EXTRACTORS_REGISTRY[name]
        self.name, self.device, self.batch_size, self.progress = name, device, batch_size, progress
        self.layer = cls.get_default_feature_layer_for_metric("fid")  # '2048' (pool3) for Inception
        self.weights = weights
        self.weights_sha256 = file_sha256(weights) if weights else None
        kwargs = {"feature_extractor_weights_path": str(weights)} if weights else {}
        try:
            model = cls(name, [self.layer], verbose=False, **kwargs)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AnimeganError(f"feature extractor '{name}' could not be created ({reason[:200]})") from None
        model.requires_grad_(False).eval()
        # NHWC: 2-4x faster on CPU for Inception, same features within float32 rounding.
        self.model = model.to(device, memory_format=torch.channels_last)

    @torch.no_grad()
    def __call__(self, images: Iterable[torch.Tensor], total: Optional[int] = None, desc: str = "") -> torch.Tensor:
        """Features [N, D] (float32, CPU) of uint8 image batches of any size."""
        from tqdm import tqdm

        out = []
        with tqdm(total=total, desc=desc, unit="img", disable=not self.progress, leave=False) as bar:
            for chunk in images:
                for start in range(0, len(chunk), self.batch_size):
                    batch = chunk[start:start + self.batch_size].to(self.device, non_blocking=True)
                    out.append(self.model(batch)[0].float().cpu())
                    bar.update(len(batch))
        if not out:
            raise AnimeganError("no images to evaluate")
        return torch.cat(out)

    def identity(self) -> dict:
        """What makes its features what they are (where the weights file lies does not)."""
        return {"feature_extractor": self.name, "feature_layer": self.layer, "weights_sha256": self.weights_sha256}


def build_extractor(conf, device: torch.device, progress: bool = False) -> FeatureExtractor:
    """The extractor an EvalConfig asks for (weights resolved first, so offline fails fast)."""
    weights = resolve_inception_weights(conf.inception_weights, conf.download_timeout) \
        if conf.feature_extractor == INCEPTION else None
    return FeatureExtractor(conf.feature_extractor, device, weights, conf.batch_size, progress)


def stats_folder(conf) -> Path:
    if conf.stats_dir:
        return Path(conf.stats_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "animegan" / "fid-reference"


def real_subset(images: torch.Tensor, n_real: int) -> torch.Tensor:
    """All images (n_real 0 or >= N), else a fixed random n_real of them (seed 0: part of the protocol)."""
    if not n_real or n_real >= len(images):
        return images
    keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n_real]
    return images[keep.sort().values.to(images.device)]


def reference_features(images: torch.Tensor, extractor: FeatureExtractor, conf, dataset_name: str = "") -> Dict:
    """{"features", "protocol"} of the real images, from the cache or computed once and cached."""
    started = time.perf_counter()
    real = real_subset(images, conf.n_real)
    fingerprint = images_fingerprint(images)
    protocol = {"dataset": dataset_name, "dataset_fingerprint": fingerprint, "image_size": int(images.shape[-1]),
                "n_real": len(real), "real_subset_seed": 0 if len(real) < len(images) else None,
                **extractor.identity()}
    key = hashlib.sha256(repr(sorted(protocol.items())).encode()).hexdigest()[:16]
    path = stats_folder(conf) / f"{extractor.name}-{protocol['image_size']}px-n{len(real)}-{key}.pt"
    cached = _load_reference(path, protocol)
    if cached is not None:
        log.info("FID reference features reused: %s", path)
        return cached
    chunks = (real[i:i + 1024] for i in range(0, len(real), 1024))
    features = extractor(chunks, total=len(real), desc="reference features")
    reference = {"format": REFERENCE_FORMAT, "version": REFERENCE_VERSION, "features": features, "protocol": protocol}
    try:
        save_checkpoint(reference, path, remedy="set eval.stats_dir to a folder with space")
        log.info("FID reference features of %d real images computed in %.1fs, cached in %s",
                 len(real), time.perf_counter() - started, path)
    except AnimeganError as exc:  # the run goes on; the next one computes them again
        log.warning("FID reference features computed but not cached: %s", exc)
    return reference


def _load_reference(path: Path, protocol: dict) -> Optional[Dict]:
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if obj.get("format") == REFERENCE_FORMAT and obj.get("protocol") == protocol \
                and obj["features"].shape[0] == protocol["n_real"]:
            return obj
        reason = "made under another protocol"
    except Exception as exc:  # truncated, foreign or corrupt: recompute rather than fail
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    log.warning("ignoring the FID reference cache %s (%s); recomputing it", path, reason)
    return None


def fid_kid(fake: torch.Tensor, real: torch.Tensor, kid_subset_size: int = 1000, kid_subsets: int = 100,
            seed: int = 0, real_stats: Optional[dict] = None) -> Dict[str, float]:
    """FID and KID (mean, std over subsets) between two feature sets [N, D], by torch-fidelity.
    `real_stats`: the Gaussian fit of `real` when already known (see gaussian_fit)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    fid = fid_statistics_to_metric(gaussian_fit(fake), real_stats or gaussian_fit(real), verbose=False)[KEY_METRIC_FID]
    subset = min(kid_subset_size, len(fake), len(real))
    kid = kid_features_to_metric(fake, real, kid_subsets=kid_subsets, kid_subset_size=subset, rng_seed=seed,
                                 verbose=False)
    return {"fid": fid, "kid": kid[KEY_METRIC_KID_MEAN], "kid_std": kid[KEY_METRIC_KID_STD], "kid_subset_size": subset}


def gaussian_fit(features: torch.Tensor) -> dict:
    """Mean and covariance (float64) of features [N, D], as torch-fidelity's FID takes them."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(features.double())


def evaluate(generator: torch.nn.Module, reference: Dict, extractor: FeatureExtractor, conf, n: int) -> Dict:
    """FID/KID of `n` images from `generator` (latents seeded by conf.seed) against the
    reference; returns the metrics plus the full protocol they were measured under."""
    from animegan.sampling import generate

    started = time.perf_counter()
    fake = extractor(generate(generator, n, seed=conf.seed, chunk=conf.batch_size), total=n, desc="generated")
    if "gaussian" not in reference:  # the real side's fit is the same at every evaluation of a run
        reference["gaussian"] = gaussian_fit(reference["features"])
    metrics = fid_kid(fake, reference["features"], conf.kid_subset_size, conf.kid_subsets, seed=conf.seed,
                      real_stats=reference["gaussian"])
    ref = reference["protocol"]
    protocol = {
        **ref, "n_generated": n, "latent_seed": conf.seed, "kid_subsets": conf.kid_subsets,
        "kid_subset_size": metrics.pop("kid_subset_size"),
        "resize": RESIZE.get(extractor.name, f"as torch-fidelity's '{extractor.name}' does"),
    }
    comparable = {k: v for k, v in protocol.items() if k != "dataset"}
    protocol["protocol_id"] = hashlib.sha256(repr(sorted(comparable.items())).encode()).hexdigest()[:16]
    protocol["weights_file"] = str(extractor.weights) if extractor.weights else None
    return {**metrics, "seconds": round(time.perf_counter() - started, 2), "protocol": protocol}


def library_versions() -> dict:
    import torch_fidelity

    import animegan

    return {"animegan": animegan.__version__, "torch": torch.__version__, "torch_fidelity": torch_fidelity.__version__}


class TrainingEvaluator:
    """FID/KID during training (eval.every_n_epochs). The extractor and the reference
    features are made once, before the first step, so a missing weights file stops the
    run at once instead of after the first epoch."""

    def __init__(self, conf, images, device):
        self.conf = conf.eval
        with torch.random.fork_rng(devices=[]):  # the extractor's init must not shift the run's random stream
            try:
                self.extractor = build_extractor(conf.eval, device)
            except AnimeganError as exc:
                raise AnimeganError(f"{exc}; or train without FID: eval.every_n_epochs=0") from None
        self.reference = reference_features(images, self.extractor, conf.eval, conf.dataset.name)

    def measure(self, generator) -> dict:
        """FID, KID and their protocol for `generator` (see animegan.fidelity.evaluate)."""
        return evaluate(generator, self.reference, self.extractor, self.conf, self.conf.n)
