"""The `lossbench` app and what every command shares: one `error:` line and exit code 2 for
bad input (`guard`, `OneLineErrors`), and the results folder a command reads (`chosen_folder`).

Every command goes through `guard`, the one place where bad input (`LossbenchError`) becomes
`error: ...` on stderr and exit code 2. Malformed options are reported the same way
(`OneLineErrors`), so exit code 2 always means "your input is wrong". The commands live in
run.py (run, sweep, sweep-b), tune.py (tune), results.py (report, plot, export),
listings.py (strategies, experiments) and data.py (data info, data download);
lossbench/cli/__init__.py registers them.
"""

from __future__ import annotations

import signal
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
import typer.core
from typer.core import TyperGroup

from lossbench.cli.display import console, err_console
from lossbench.errors import LossbenchError, Terminated, raise_terminated

# Typer vendors click in recent releases (typer._click) and depends on click in older ones.
_click = getattr(typer.core, "_click", None) or __import__("click")
ClickException = _click.ClickException
NoArgsIsHelpError = getattr(_click.exceptions, "NoArgsIsHelpError", ())
Abort = getattr(typer.core, "Abort", None) or getattr(_click.exceptions, "Abort", ())


HELP_ORDER = ("run", "tune", "sweep-b", "sweep", "report", "plot", "export", "strategies",
              "experiments", "data", "migrate")
"""The order of the commands in `lossbench --help`: the main job first."""


class OneLineErrors(TyperGroup):
    """Report usage errors (unknown option, bad value) as one `error:` line, exit code 2;
    list the commands in HELP_ORDER (then any other, as registered)."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: HELP_ORDER.index(n) if n in HELP_ORDER else 99)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError:
            code = 0  # typer has printed the help already
        except ClickException as exc:
            print_error(exc.format_message())
            code = 2
        except Abort:
            err_console.print("error: aborted", markup=False)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="How should I combine my losses? Paired comparisons of ways to combine "
                       "a recommender's main and auxiliary loss (plain sum, reweighting, "
                       "flooding, the field's baselines and your own) on the same data, initial "
                       "weights and batch order.")
"""Help is click's plain layout (`rich_markup_mode=None`): the same on every Typer version,
brackets in help texts print as written, and `--help` does not import rich's help renderer."""


def one_line(message: str) -> str:
    """Escape control and line-separator characters (which may come from user input), so an
    error is always exactly one line."""
    return "".join(c if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Cs")
                   else ascii(c)[1:-1] for c in message)


def print_error(message: str) -> None:
    err_console.print(f"error: {one_line(message)}", markup=False, soft_wrap=True)


@app.callback()
def main_callback() -> None:
    """Paired comparisons of ways to combine a main and an auxiliary loss."""


@contextmanager
def guard() -> Iterator[None]:
    """Turn LossbenchError into one line on stderr and exit code 2 (no traceback)."""
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    except LossbenchError as exc:
        print_error(str(exc))
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt as exc:
        err_console.print("interrupted: finished runs are kept and the run in flight is marked "
                          "'interrupted'; run the same command again to resume", markup=False)
        raise typer.Exit(code=143 if isinstance(exc, Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def chosen_folder(results_dir: Path | None, out: Path) -> Path:
    """RESULTS_DIR as given, else the most recently written results folder under `out`,
    announced (so the user knows which one was read)."""
    from lossbench.results import report  # numpy: only when a command reads results

    if results_dir is not None:
        return results_dir
    folder = report.latest_results(out)
    console.print(f"using the most recent results folder: {folder}", markup=False,
                  highlight=False)
    return folder
