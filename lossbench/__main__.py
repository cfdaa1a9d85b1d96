"""`python -m lossbench ...` is the same as `lossbench ...`."""

from lossbench.cli.app import app

if __name__ == "__main__":  # guard: --jobs workers are spawned and re-import __main__
    app(prog_name="lossbench")
