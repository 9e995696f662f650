"""One training per run directory at a time.

A second `animegan-train` pointed at a directory another one is writing to would mix
two runs' checkpoints and metrics. A training holds an exclusive `flock` on
<run>/.animegan.lock for as long as it lives; the kernel drops the lock when the process
ends, however it ends (kill -9 and power cuts included), so a crashed run never leaves a
stale lock behind; a run that ends deletes the file. The file says who holds it, for the
error message.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from animegan.errors import AnimeganError
from animegan.files import drop_lock_file, take_lock_file

LOCK_NAME = ".animegan.lock"


@contextlib.contextmanager
def holding_run_directory(run_dir: Path, active: bool = True) -> Iterator[None]:
    """Hold the run directory for the `with` block, or refuse with one line if another
    process has it. Inactive on the processes that do not write (rank > 0)."""
    if not active:
        yield
        return
    run_dir = Path(run_dir).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = take_lock_file(run_dir / LOCK_NAME, wait=False)
    if fd is None:
        try:
            holder = (run_dir / LOCK_NAME).read_text(errors="replace")[:200].strip()
        except OSError:  # it ended just now
            holder = ""
        raise AnimeganError(f"another training is writing to {run_dir} ({holder or 'another process'}); wait for "
                            "it to end, or train into another directory (hydra.run.dir=...)")
    with contextlib.suppress(OSError):  # who holds it, for the message above; a full disk may refuse it
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    try:
        yield
    finally:
        drop_lock_file(run_dir / LOCK_NAME, fd)


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete the temporary files of writes that a killed process never finished
    (animegan.files.atomic_replace names them .<name>.tmp-<pid>). Only safe while this
    process holds the run directory: then no one else is writing there."""
    run_dir = Path(run_dir)
    stale = [p for folder in (run_dir, run_dir / "checkpoints", run_dir / "snapshots", run_dir / "samples")
             if folder.is_dir() for p in folder.glob(".*.tmp-*")]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)
