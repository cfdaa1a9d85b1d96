"""The `lossbench` command: `app` (app.py) and its commands, registered on it as their
modules are imported here: run.py (run, sweep-b, sweep), tune.py (tune), listings.py (strategies,
experiments), results.py (report, plot, export), data.py (data info, data download).
Nothing here imports torch: `--help` stays fast (tests/test_cli.py)."""

from lossbench.cli import data, listings, results, run, tune  # noqa: F401  (register the commands)
from lossbench.cli.app import app

__all__ = ["app"]
