"""The tracker of the best FID so far, part of the training state: it decides when
checkpoints/best.pt is rewritten and when patience runs out (the evaluator that measures
FID is animegan.fidelity.TrainingEvaluator; this file needs none of it). GAN
quality is not monotonic (the StudioGAN DCGAN log: FID 49 at its best, 137 at the end of
the same run), so the best state is kept, not just the last."""

from __future__ import annotations

from typing import Optional


class FidTracker:
    """The FID of every evaluation so far, reduced to what decides best.pt and patience."""

    def __init__(self, patience: int = 0):
        self.patience = patience  # evaluations without improvement before stopping (0: never)
        self.best_fid: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.last_fid: Optional[float] = None
        self.previous_fid: Optional[float] = None  # the evaluation before the last (for the trend line)
        self.last_epoch: Optional[int] = None  # epoch of the last evaluation (a resume re-runs one a kill cut short)
        self.since_best = 0  # evaluations since the best one

    def observe(self, epoch: int, fid: float) -> bool:
        """Record an evaluation; True when it is a new best."""
        improved = self.best_fid is None or fid < self.best_fid
        if improved:
            self.best_fid, self.best_epoch, self.since_best = fid, epoch, 0
        else:
            self.since_best += 1
        self.previous_fid, self.last_fid, self.last_epoch = self.last_fid, fid, epoch
        return improved

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.since_best >= self.patience

    def trend(self) -> str:
        """e.g. 'best 48.10 at epoch 4; 2 evaluations without improvement; previous 50.31'"""
        parts = [f"best {self.best_fid:.2f} at epoch {self.best_epoch}"]
        if self.since_best:
            parts.append(f"{self.since_best} evaluation{'s' if self.since_best > 1 else ''} without improvement"
                         + (f" (patience {self.patience})" if self.patience else ""))
        if self.previous_fid is not None:
            parts.append(f"previous {self.previous_fid:.2f}")
        return "; ".join(parts)

    def state_dict(self) -> dict:
        return {"best_fid": self.best_fid, "best_epoch": self.best_epoch, "last_fid": self.last_fid,
                "since_best": self.since_best, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best_fid, self.best_epoch = state.get("best_fid"), state.get("best_epoch")
        self.last_fid, self.since_best = state.get("last_fid"), state.get("since_best", 0)
        self.last_epoch = state.get("last_epoch")
