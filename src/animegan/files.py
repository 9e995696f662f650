"""Durable file replacement: a reader (or a crash) never sees a half-written file, and a
written file survives a power cut."""

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from animegan.errors import AnimeganError

# Test hook: seconds to wait between writing a temporary file and putting it in place, so
# that a kill in the middle of a checkpoint write can be provoked on purpose
# (scripts/chaos.py, tests/test_chaos.py). Unset in normal use.
WRITE_DELAY_VARIABLE = "ANIMEGAN_WRITE_DELAY"


@contextlib.contextmanager
def atomic_replace(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it, rename it over `path` and
    fsync the folder.

    The rename is atomic on POSIX file systems, so `path` holds either the old complete
    file or the new complete file, even after `kill -9` or a power cut: the previous
    version stays until the new one is complete on disk. A failed write (disk full, a
    read-only folder) leaves `path` as it was and raises a one-line AnimeganError.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb+") as f:  # the data reaches the disk before the name points at it
            os.fsync(f.fileno())
        delay = float(os.environ.get(WRITE_DELAY_VARIABLE) or 0)
        if delay:
            time.sleep(delay)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:  # make the rename itself durable
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise AnimeganError(f"could not write {path} ({exc.strerror or exc}); "
                            f"{'the previous ' + path.name + ' is unchanged' if path.exists() else 'nothing was written'}"
                            "; free some space or choose a writable folder (hydra.run.dir=...)") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
