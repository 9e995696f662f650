"""Thin command-line entry points: they parse arguments and call the library."""

import argparse
import contextlib
import sys
from pathlib import Path
from typing import NoReturn

from animegan.errors import AnimeganError, one_line


def fail(command: str, exc: AnimeganError) -> NoReturn:
    print(f"{command}: error: {one_line(exc)}", file=sys.stderr)
    raise SystemExit(2)


@contextlib.contextmanager
def one_line_errors(command: str):
    """What the user can fix reaches them as one line and exit status 2: animegan's own
    errors, and the operating system's (a missing folder, a full disk, no permission)."""
    try:
        yield
    except AnimeganError as exc:
        fail(command, exc)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        fail(command, AnimeganError(f"{exc.strerror or exc}{where}; check the path, its permissions and the free "
                                    "space"))


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (and a pointer to --help)
    instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def path_argument(option: str, suffix: str = ""):
    """argparse type: a non-empty path (an empty one would mean the current directory),
    with the given suffix."""
    def parse(text: str) -> Path:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{option} needs a path, not an empty string")
        if suffix and Path(text).suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"{option} must name a {suffix} file, got {text!r}")
        return Path(text).expanduser()
    return parse
