"""The learning rates over a run: constant, then (optimizer.decay_start < 1) a straight
fall to `optimizer.decay_to` x lr at the run's last step.

The rate is a function of the step alone, set before every step from the config: nothing
to checkpoint, so a resume continues the same schedule bit for bit, and a resume that
names a new lr (`resume=... optimizer.lr=1e-4`) gets it (an optimizer's own state_dict
would bring back the saved one). The schedule spans the run as configured: resuming with
more `epochs` stretches its fall over the longer run.
"""

from __future__ import annotations

from typing import Sequence

import torch


class LearningRateSchedule:
    """Made with freshly built optimizers: their rates then are the config's, the base."""

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer], total_steps: int,
                 decay_start: float = 1.0, decay_to: float = 0.0):
        # (optimizer, base rate of each of its groups): loading a state_dict replaces the group dicts
        self.base = [(optimizer, [group["lr"] for group in optimizer.param_groups]) for optimizer in optimizers]
        self.total_steps = total_steps  # the run's last step: epochs x batches per epoch
        self.decay_start = decay_start  # fraction of total_steps after which the rates fall (1: never)
        self.decay_to = decay_to  # the fraction of the base rate left at the last step

    def factor(self, step: int) -> float:
        start = self.decay_start * self.total_steps
        if step <= start:  # decay_start 1: every step of the run
            return 1.0
        progress = min(1.0, (step - start) / max(1.0, self.total_steps - start))
        return 1.0 - (1.0 - self.decay_to) * progress

    def apply(self, step: int) -> None:
        """Set every optimizer's rate for `step`."""
        factor = self.factor(step)
        for optimizer, rates in self.base:
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate * factor
