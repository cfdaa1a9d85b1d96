"""The `lossbench` command: `app` (lossbench/cli/app.py) and its commands."""

from lossbench.cli.app import app

__all__ = ["app"]
