"""Checkpoint files: atomic save, safe load, and the two formats animegan writes.

- Training state (`last.pt`, `best.pt`, `epoch_XXX.pt`): everything needed to continue a
  run exactly; written by animegan.state.TrainingState.state_dict().
- Generator export (`generator.pt`, network snapshots): generator weights plus the model
  config; all that `animegan-sample` needs.

Both hold only tensors, numbers, strings, lists and dicts, so they load with
`torch.load(weights_only=True)`: a checkpoint from the internet cannot run code.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict

import torch

from animegan.errors import AnimeganError
from animegan.files import RUN_DIR_REMEDY, write_bytes_atomically

TRAINING_FORMAT = "animegan-training-state"
GENERATOR_FORMAT = "animegan-generator"
FORMAT_VERSION = 1
# What each format must hold, and of which type, before any of it is used.
REQUIRED = {
    TRAINING_FORMAT: {"version": int, "epoch": int, "step": int, "step_in_epoch": int, "generator": dict,
                      "discriminator": dict, "opt_g": dict, "opt_d": dict, "rng": dict, "fixed_noise": torch.Tensor,
                      "config": dict},
    GENERATOR_FORMAT: {"model": dict, "state_dict": dict},
}


def save_checkpoint(obj: Dict[str, Any], path: Path, remedy: str = RUN_DIR_REMEDY) -> None:
    """Write `obj` to `path` atomically: the previous file survives any crash mid-write.

    Serialised in memory first: its size is then checked against the free space before
    anything is written, and a full disk raises OSError from a plain write (PyTorch's own
    file writer fails with a RuntimeError that does not say why)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomically(Path(path), buffer.getbuffer(), remedy)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load an animegan checkpoint of either format onto the CPU, refusing anything else."""
    path = Path(path)
    if not path.is_file():
        raise AnimeganError(f"checkpoint not found: {path} (check the path; training writes <run>/checkpoints/last.pt)")
    _check_archive(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # a class or function reference: the safe loader refuses it
            raise AnimeganError(
                f"{path} holds objects other than tensors and plain data; it was not written by animegan "
                "and is not loaded, since such a file could run code"
            ) from None
        raise AnimeganError(f"{path} is not a readable PyTorch checkpoint (a plain pickle or another file type)") from None
    except Exception as exc:  # torch.load raises many types for files of other kinds
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AnimeganError(f"{path} is not a readable PyTorch checkpoint (truncated or another file type: {reason})") from None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt not in (TRAINING_FORMAT, GENERATOR_FORMAT):
        raise AnimeganError(
            f"{path} is a PyTorch file but not an animegan checkpoint (no animegan 'format' field); "
            "use a last.pt or generator.pt written by animegan-train"
        )
    version = obj.get("version", 0)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise AnimeganError(
            f"{path} has checkpoint format version {obj['version']}, newer than this animegan "
            f"understands ({FORMAT_VERSION}); upgrade animegan"
        )
    missing = [k for k, kind in REQUIRED[fmt].items() if not isinstance(obj.get(k), kind)]
    if missing:
        raise AnimeganError(f"{path} says it is an animegan checkpoint but lacks {', '.join(missing)} (or holds "
                            "something else there); it was not written by animegan, or was damaged")
    return obj


def _check_archive(path: Path) -> None:
    """Refuse what torch.load would read without a bound on memory. A checkpoint is a zip
    archive of stored (uncompressed) records: torch checks each tensor against its
    record's size, which the file's size bounds. Compressed records are accepted by
    torch.load too, and a small compressed file can expand to any size; animegan never
    writes them. (Files of other kinds fail the zip test and get their own message.)"""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise AnimeganError(f"{path} is not a readable PyTorch checkpoint (a damaged archive: {exc})") from None
    size = path.stat().st_size
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries) or sum(e.file_size for e in entries) > size:
        raise AnimeganError(f"{path} holds compressed records, which animegan never writes and which could expand "
                            "without bound; it is not loaded")


def load_training_state(path: Path) -> Dict[str, Any]:
    """Like load_checkpoint, but only a training checkpoint (what resume needs) is accepted."""
    state = load_checkpoint(path)
    if state["format"] != TRAINING_FORMAT:
        raise AnimeganError(f"{path} is a generator-only export; resume needs a training checkpoint (checkpoints/last.pt)")
    return state


def generator_export(generator, model_config: dict, *, epochs: int, config: dict, step: int) -> Dict[str, Any]:
    """Generator weights (fp32, CPU, contiguous) plus what is needed to rebuild it, and
    where in training it was taken."""
    weights = {k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.cpu()
               for k, v in generator.state_dict().items()}
    return {
        "format": GENERATOR_FORMAT,
        "version": FORMAT_VERSION,
        "model": dict(model_config),
        "state_dict": weights,
        "epochs": epochs,
        "step": step,
        "config": config,
    }


def generator_weights(ckpt: Dict[str, Any]):
    """(model config dict, generator state_dict) from either checkpoint format. A training
    checkpoint of a run with train.ema gives the averaged generator, as its export does."""
    if ckpt["format"] == GENERATOR_FORMAT:
        return ckpt["model"], ckpt["state_dict"]
    return ckpt["config"]["model"], ckpt.get("generator_ema", ckpt["generator"])
