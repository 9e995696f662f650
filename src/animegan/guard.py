"""Divergence guard: spots a run that has blown up, on the metrics the loop already reads.

Two signatures:
- NaN or inf in any logged value (loss_D, loss_G, D(x), D(G(z))): the weights are lost.
  This always stops the run, whatever `mode` says: training on, grids, FID and an export
  of a NaN network are all worthless, and `last.pt` keeps the last good state.
- Collapse, the classic DCGAN failure: |loss_D| stays below `d_loss` while loss_G stays
  above `g_loss` for `patience` consecutive steps (D wins outright, G's gradient is noise).
  `mode` decides: `off` ignores it, `warn` logs it and trains on (it may recover), `stop`
  ends the run.

It sees the rows the loop hands over every `train.log_every` steps (one host sync per
window, which the loop does anyway), so it adds no sync to the training step. While the
run is diverged, `diverged` is True and run.py writes no checkpoint, so `last.pt` stays
the last good state. NaN is final; a collapse that ends (the streak breaks) clears it.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

log = logging.getLogger("animegan")


class DivergenceGuard:
    def __init__(self, mode: str = "warn", patience: int = 100, d_loss: float = 1e-3, g_loss: float = 10.0):
        self.mode, self.patience, self.d_loss, self.g_loss = mode, patience, d_loss, g_loss
        self.streak = 0  # consecutive steps showing the collapse signature
        self.nonfinite_step = 0  # first step with a NaN/inf value (0: none)
        self.collapse_step = 0  # step at which the current collapse was declared (0: none)

    @property
    def diverged(self) -> bool:
        return bool(self.nonfinite_step) or (self.mode != "off" and bool(self.collapse_step))

    @property
    def should_stop(self) -> bool:
        return bool(self.nonfinite_step) or (self.mode == "stop" and bool(self.collapse_step))

    @property
    def reason(self) -> str:
        if self.nonfinite_step:
            return f"NaN/inf loss at step {self.nonfinite_step}"
        if self.collapse_step:
            return (f"collapse at step {self.collapse_step}: |loss_D| < {self.d_loss:g} while loss_G > {self.g_loss:g} "
                    f"for {self.patience} consecutive steps")
        return ""

    def observe(self, rows: Sequence[Sequence[float]]) -> bool:
        """Check rows [epoch, step, loss_D, loss_G, D(x), D(G(z))]; True when the run should stop."""
        if self.nonfinite_step:
            return True
        was = self.diverged
        for row in rows:
            step, values = int(row[1]), row[2:]
            if not all(math.isfinite(v) for v in values):
                self.nonfinite_step = step
                break
            if self.mode == "off":
                continue
            loss_d, loss_g = values[0], values[1]
            self.streak = self.streak + 1 if abs(loss_d) < self.d_loss and loss_g > self.g_loss else 0
            if self.streak >= self.patience and not self.collapse_step:
                self.collapse_step = step
            elif self.streak == 0 and self.collapse_step:
                log.warning("the collapse signature has ended at step %d; checkpoints are written again", step)
                self.collapse_step = 0
        if self.diverged and not was:
            action = "stopping" + (" (train.guard=stop)" if not self.nonfinite_step else "") if self.should_stop \
                else "training on (train.guard=warn)"
            log.warning("divergence: %s; %s; checkpoints/last.pt keeps the last good state", self.reason, action)
        return self.should_stop

    def state_dict(self) -> dict:
        return {"streak": self.streak}

    def load_state_dict(self, state: dict) -> None:
        self.streak = int(state.get("streak", 0))
