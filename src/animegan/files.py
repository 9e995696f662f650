"""Durable file writes and lock files: a reader (or a crash) never sees a half-written file,
a written file survives a power cut, and a full disk is one line that names the file.

What a full disk really raises differs by writer (Python and Pillow: OSError ENOSPC;
PyTorch's zip writer: a RuntimeError from C++ that does not say why). So the big binary
files (checkpoints) are serialised in memory first and written here with plain file
writes: the size is known before the first byte is written, and a full disk is an
OSError like any other.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from pathlib import Path
from typing import Iterator, Optional, Tuple

from animegan.errors import AnimeganError

try:
    import fcntl
    import resource
except ImportError:  # not POSIX: no locks, no file-size limit
    fcntl = resource = None

# Test hook: seconds to wait between writing a temporary file and putting it in place, so
# that a kill in the middle of a checkpoint write can be provoked on purpose
# (tests/harness/chaos.py, tests/test_chaos.py). Unset in normal use.
WRITE_DELAY_VARIABLE = "ANIMEGAN_WRITE_DELAY"
RUN_DIR_REMEDY = "free some space or choose another folder (hydra.run.dir=...)"


@contextlib.contextmanager
def atomic_replace(path: Path, needed_bytes: Optional[int] = None, remedy: str = RUN_DIR_REMEDY,
                   durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it, rename it over `path` and
    fsync the folder.

    The rename is atomic on POSIX file systems, so `path` holds either the old complete
    file or the new complete file, even after `kill -9` or a power cut: the previous
    version stays until the new one is complete on disk. `needed_bytes`, when known, is
    checked against the free space before anything is written. A failed write (disk full,
    a file-size limit, a read-only folder) removes the temporary file, leaves `path` as it
    was and raises a one-line AnimeganError ending in `remedy`. `durable=False` skips the
    fsyncs (many small files nobody resumes from, such as `animegan-sample --save-individual`).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if needed_bytes is not None:
            check_free_space(path, needed_bytes, remedy)
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:  # the data reaches the disk before the name points at it
                os.fsync(f.fileno())
        delay = float(os.environ.get(WRITE_DELAY_VARIABLE) or 0)
        if delay:
            time.sleep(delay)
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:  # make the rename itself durable
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise AnimeganError(write_failure(path, exc, needed_bytes, remedy)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes_atomically(path: Path, data, remedy: str = RUN_DIR_REMEDY) -> None:
    """`data` (bytes or a memoryview) to `path` through atomic_replace, its size checked first."""
    with atomic_replace(path, len(data), remedy) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


@contextlib.contextmanager
def appending(path: Path, remedy: str = RUN_DIR_REMEDY) -> Iterator:
    """Open `path` to append; if the write fails, cut the file back to what it held, so a
    full disk never leaves half a line, and raise the one-line error."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "a", newline="") as f:
            yield f
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.truncate(path, size)
        raise AnimeganError(write_failure(path, exc, None, remedy, appended=True)) from None


def room_for_one_file(folder: Path) -> Tuple[int, str]:
    """(bytes one file written in `folder` can take, those words for a message): the file
    system's free space, or the process's file-size limit (RLIMIT_FSIZE, `ulimit -f`)
    where that is smaller."""
    free = shutil.disk_usage(folder).free
    if resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and soft < free:
            return soft, f"a file can have at most {human_size(soft)} (the file-size limit, ulimit -f)"
    return free, f"{folder} has {human_size(free)} free"


def check_free_space(path: Path, needed_bytes: int, remedy: str = RUN_DIR_REMEDY) -> None:
    """Refuse, before writing, a file of `needed_bytes` that cannot fit beside `path`."""
    path = Path(path)
    room, room_words = room_for_one_file(path.parent)
    if needed_bytes > room:
        raise AnimeganError(f"cannot write {path}: it needs {human_size(needed_bytes)} and {room_words}; "
                            f"{_previous(path)}; {remedy}")


def write_failure(path: Path, exc: OSError, needed_bytes: Optional[int], remedy: str, appended: bool = False) -> str:
    """The one line for a write that the operating system refused."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        with contextlib.suppress(OSError):
            room = human_size(room_for_one_file(path.parent)[0])
            reason += f": {human_size(needed_bytes)} needed, room for {room}" if needed_bytes else f": room for {room}"
    kept = f"{path.name} keeps what it held before" if appended else _previous(path)
    return f"could not write {path} ({reason}); {kept}; {remedy}"


def human_size(n: Optional[int]) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _previous(path: Path) -> str:
    return f"the previous {path.name} is unchanged" if path.exists() else "nothing was written"


# --- lock files -----------------------------------------------------------------------------------------------------


def take_lock_file(path: Path, wait: bool) -> Optional[int]:
    """An exclusive `flock` on `path` (created if needed): its file descriptor, or None when
    another process holds it and `wait` is False. The kernel drops the lock when the process
    dies, so a crash leaves no stale lock. A holder deletes the file when it is done
    (drop_lock_file); whoever was waiting on the deleted file then locks a new one."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)  # the previous holder deleted it while this process waited: lock the new one


def drop_lock_file(path: Path, fd: int) -> None:
    """Delete the lock file and release the lock (in that order: see take_lock_file)."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
