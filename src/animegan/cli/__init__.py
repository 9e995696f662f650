"""Thin command-line entry points: they parse arguments and call the library."""

import sys

from animegan.errors import AnimeganError


def fail(command: str, exc: AnimeganError) -> "NoReturn":  # noqa: F821
    print(f"{command}: error: {exc}", file=sys.stderr)
    raise SystemExit(2)
