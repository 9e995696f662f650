"""Why a training run stops, and the requests to stop that arrive from outside.

The loop returns a `StopReason`; the end-of-run code reads it (export or not, final grid,
exit status). Clusters send SIGTERM some time before they kill a job, and Ctrl-C sends
SIGINT: both only ask the run to stop after the current step, write last.pt, print the
resume command and exit non-zero. A second Ctrl-C stops at once, as Python's default does.
"""

from __future__ import annotations

import enum
import signal
import threading
import time
from typing import Optional


class StopReason(enum.Enum):
    FINISHED = "finished"  # every epoch done
    DIVERGED = "diverged"  # NaN/inf, or a collapse with train.guard=stop: nothing of the state is kept
    OUT_OF_TIME = "out of time"  # train.max_minutes spent
    FID_PATIENCE = "FID patience"  # eval.patience evaluations without a better FID
    SIGNAL = "signal"  # SIGTERM or Ctrl-C: last.pt written, resume later


class StopRequests:
    """Catches SIGTERM and SIGINT while a run trains (a context manager). `received` is the
    first signal's number; the loop polls it between steps (a plain attribute read)."""

    EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as shells report it

    def __init__(self):
        self.received: Optional[int] = None
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in self.EXIT_STATUS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    @property
    def exit_status(self) -> int:
        return self.EXIT_STATUS.get(self.received, 1)


class TimeBudget:
    """train.max_minutes: spent once that much wall time has passed since the loop started
    (also the clock of the snapshots taken at given minutes)."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.started = time.perf_counter()

    @property
    def minutes(self) -> float:
        return (time.perf_counter() - self.started) / 60

    @property
    def spent(self) -> bool:
        return bool(self.seconds) and time.perf_counter() - self.started >= self.seconds
