"""The one exception type that reaches the user as a single line instead of a traceback."""


class AnimeganError(Exception):
    """A problem the user can fix (bad config, missing folder, foreign checkpoint...).

    The message is one line that says what is wrong and what to do. Entry points print
    it as ``animegan-<cmd>: error: <message>`` and exit with status 2.
    """


def one_line(text: str) -> str:
    """`text` with its control characters written out (\\n, \\r, ...): a path or value the
    user typed can hold them, and an error message must stay on one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


class RunFailed(AnimeganError):
    """An AnimeganError (or the operating system's error) that ended a run once it had its
    run directory: the run logged it already (the console and train.log), so the command
    line exits with status 2 without printing it again."""
