"""The one family of exceptions that means "your input is wrong".

Code raises these where a problem is detected, naming the key, file or value and what is
allowed. `cli.py` catches `LossbenchError` in one place, prints `error: ...` on stderr and
exits with code 2. Anything else escaping is a bug (traceback, exit code 1).
"""


class LossbenchError(Exception):
    """Bad input from the user: a setting, a file, a folder."""


class ConfigError(LossbenchError):
    """An unknown or out-of-range setting, or a config file that cannot be read."""


class DataError(LossbenchError):
    """A data set or results file that is missing, corrupt or in the wrong format."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that it unwinds like Ctrl-C (exit code 143)."""


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: unwind like Ctrl-C, so the run in flight is marked interrupted."""
    raise Terminated()
