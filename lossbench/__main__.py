"""`python -m lossbench ...` is the same as `lossbench ...`."""

from lossbench.cli import app

app(prog_name="lossbench")
