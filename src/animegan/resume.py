"""Resuming without destroying work: where a resumed run writes, and whether it can
continue the batch order it left.

- A run continues in its own directory only from its newest state (`last.pt`, or another
  checkpoint of the same step). Resuming from an older one (`best.pt`, `epoch_005.pt`)
  would truncate `metrics.csv` and overwrite `last.pt` of the newer work, so it branches:
  a new run directory that records its parent checkpoint and starts its metrics with the
  parent's rows up to that step. The old run is not touched.
- The batch order is a function of (seed, epoch, dataset, batch_size). A checkpoint
  records these; a resume that changes one of them is refused with one line, unless
  `resume_new_order=true` says the user means it: then the interrupted epoch starts again
  from its first batch in the new order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from animegan.checkpoint import load_training_state
from animegan.errors import AnimeganError


@dataclass
class ResumePlan:
    """A resume, decided once before anything is written, from one load of the checkpoint:
    the command line and the run share it."""

    source: Path  # the training checkpoint
    state: Dict[str, Any]  # its contents
    branch: bool  # True: this run continues it in another directory (False: in its own run directory)
    parent_run: Optional[Path]  # the run directory it was written in, if any


def plan_resume(source: Path, run_dir: Optional[Path], state: Optional[Dict[str, Any]] = None) -> ResumePlan:
    """Load the checkpoint (unless its `state` is given) and decide: continue in place (its
    own run directory, its newest state) or branch into another directory. `run_dir`: the
    one the user named, or None (then the newest state continues in place and any other
    branches into a new directory). Resuming an older state inside its own run directory is
    refused: it would overwrite newer work."""
    source = Path(source)
    state = load_training_state(source) if state is None else state
    home = run_dir_of(source)
    if run_dir is None:
        return ResumePlan(source, state, not is_newest_state(source, int(state["step"])), home)
    if home is not None and home.resolve() == Path(run_dir).resolve():
        if not is_newest_state(source, int(state["step"])):
            raise AnimeganError(f"{source} is older than {home / 'checkpoints' / 'last.pt'}: resuming it inside its "
                                "own run directory would overwrite that newer work; leave out hydra.run.dir and the "
                                "resumed run branches into a new directory")
        return ResumePlan(source, state, False, home)
    return ResumePlan(source, state, True, home)


def run_dir_of(checkpoint: Path) -> Optional[Path]:
    """The run directory a checkpoint was written in (<run>/checkpoints/x.pt), else None."""
    checkpoint = Path(checkpoint).absolute()
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def is_newest_state(checkpoint: Path, step: int) -> bool:
    """True when no state newer than `step` exists in the checkpoint's run: its last.pt is
    this file, or holds the same step."""
    run = run_dir_of(checkpoint)
    if run is None:
        return False
    last = run / "checkpoints" / "last.pt"
    if not last.is_file():
        return False
    if last.samefile(checkpoint):
        return True
    try:
        return int(load_training_state(last)["step"]) <= step
    except AnimeganError:  # a damaged last.pt holds nothing newer: the resume replaces it
        return True


def find_newest_state(run_dir: Path) -> Tuple[Optional[Path], Optional[Dict[str, Any]], List[Tuple[Path, str]]]:
    """The training state of the highest step in <run_dir>/checkpoints that loads (its path
    and contents, kept for the resume: it is not loaded again), and the (path, reason) of
    those that do not."""
    best: Optional[Tuple[int, int, Path, Dict[str, Any]]] = None
    damaged = []
    folder = Path(run_dir) / "checkpoints"
    names = sorted(folder.glob("epoch_*.pt")) + [folder / "best.pt", folder / "last.pt"]
    for rank, path in enumerate(p for p in names if p.is_file()):
        try:
            state = load_training_state(path)
        except AnimeganError as exc:
            damaged.append((path, str(exc).split(": ", 1)[-1] if str(path) in str(exc) else str(exc)))
            continue
        step = int(state["step"])
        if best is None or (step, rank) >= best[:2]:  # on a tie, last.pt (listed last) wins
            best = (step, rank, path, state)
    return (best[2], best[3], damaged) if best else (None, None, damaged)


def data_order(conf, fingerprint: Optional[str]) -> Dict[str, Any]:
    """What the batch order depends on; stored in every training checkpoint. A None
    fingerprint (the images not loaded yet) is left out of comparisons."""
    return {"batch_size": conf.batch_size, "seed": conf.seed, "dataset": conf.dataset.name,
            "dataset_fingerprint": fingerprint, "flip": conf.dataset.flip}


def saved_data_order(state: Dict[str, Any]) -> Dict[str, Any]:
    """The data order a checkpoint was trained with (from its config for checkpoints
    written before the order was recorded; their images are unknown)."""
    if "data_order" in state:
        return state["data_order"]
    c = state["config"]
    return {"batch_size": c["batch_size"], "seed": c["seed"], "dataset": c["dataset"]["name"],
            "dataset_fingerprint": None, "flip": c["dataset"]["flip"]}


def check_data_order(saved: Dict[str, Any], now: Dict[str, Any], new_order_allowed: bool, checkpoint: Path) -> bool:
    """Compare the checkpoint's data order with this run's. Returns True when it changed
    and the user allowed it; raises a one-line AnimeganError when it changed otherwise."""
    changed = [key for key in ("batch_size", "seed", "flip", "dataset_fingerprint")
               if saved.get(key) is not None and now.get(key) is not None and saved[key] != now[key]]
    if not changed:
        return False
    if new_order_allowed:
        return True
    key = changed[0]
    if key == "dataset_fingerprint":
        what = (f"the images of dataset '{now['dataset']}' differ from those the checkpoint was trained on "
                f"(dataset '{saved.get('dataset')}': files added, removed or changed, or another dataset)")
    else:
        name = "dataset.flip" if key == "flip" else key
        what = f"{name}={now[key]} differs from the checkpoint's {name}={saved[key]}"
    raise AnimeganError(f"resume from {checkpoint}: {what}, which changes the batch order; resume with the "
                        "checkpoint's settings, or add resume_new_order=true to continue in a new order "
                        "(the interrupted epoch starts again from its first batch)")
