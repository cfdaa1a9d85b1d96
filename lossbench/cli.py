"""The `lossbench` command. Thin: parse options, call the library, show progress and tables.

Every command goes through `guard`, the one place where bad input (`LossbenchError`) becomes
`error: ...` on stderr and exit code 2. Malformed options are reported the same way
(`OneLineErrors`), so exit code 2 always means "your input is wrong".
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from typer.core import TyperGroup

from lossbench.errors import LossbenchError

# Typer vendors click in recent releases (typer._click) and depends on click in older ones.
_click = getattr(typer.core, "_click", None) or __import__("click")
ClickException = _click.ClickException
NoArgsIsHelpError = getattr(_click.exceptions, "NoArgsIsHelpError", ())
Abort = getattr(typer.core, "Abort", None) or getattr(_click.exceptions, "Abort", ())

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class OneLineErrors(TyperGroup):
    """Report usage errors (unknown option, bad value) as one `error:` line, exit code 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError:
            code = 0  # typer has printed the help already
        except ClickException as exc:
            err_console.print(f"error: {exc.format_message()}", markup=False)
            code = 2
        except Abort:
            err_console.print("error: aborted", markup=False)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Paired comparisons of ways to combine a main and an auxiliary loss: "
                       "plain, reweight, flood, reweight-flood.")


@app.callback()
def main_callback() -> None:
    """Paired comparisons of ways to combine a main and an auxiliary loss."""


@contextmanager
def guard() -> Iterator[None]:
    """Turn LossbenchError into one line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except LossbenchError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=2) from None


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


class ProgressEvents:
    """Renders `experiment.Events` as two rich progress bars: runs, and epochs of the run."""

    def __init__(self, progress: Progress, total_runs: int) -> None:
        self.progress = progress
        self.runs = progress.add_task("runs", total=total_runs)
        self.epochs = progress.add_task("epochs", total=1)

    def run_started(self, cfg, index: int, total: int) -> None:
        self.progress.start()  # only once there is work: errors before it print alone
        label = f"{cfg.strategy} b={cfg.b:g} seed={cfg.seed}"
        self.progress.update(self.runs, description=f"run {index + 1}/{total}")
        self.progress.reset(self.epochs, total=cfg.epochs, description=label)

    def epoch_done(self, cfg, row: dict) -> None:
        self.progress.update(self.epochs, advance=1,
                             description=f"{cfg.strategy} b={cfg.b:g} seed={cfg.seed} "
                                         f"val_loss={row['val_loss']:.4f}")

    def run_finished(self, outcome) -> None:
        self.progress.advance(self.runs)
        if outcome.skipped:
            self.progress.console.print(f"skipped (already complete): {outcome.dir}")


def make_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console, transient=False)


def runs_table(comparison) -> Table:
    """One line per run: strategy, b, seed, best epoch and the metrics there."""
    table = Table(title=f"lossbench run: {len(comparison.runs)} runs "
                        "(val = validation at the best epoch, test there too)")
    for column in ("strategy", "b", "seed", "status", "best ep", "val loss", "final val",
                   "test loss", "test acc", "test ndcg10", "s"):
        table.add_column(column, justify="left" if column in ("strategy", "status") else "right")
    for run in comparison.runs:
        s = run.summary
        table.add_row(run.cfg.strategy, f"{run.cfg.b:g}", str(run.cfg.seed),
                      s.get("status", "?") + (" (skipped)" if run.skipped else ""),
                      fmt(s.get("best_epoch")), fmt(s.get("val_loss"), 3),
                      fmt(s.get("final_val_loss"), 3), fmt(s.get("test_loss"), 3),
                      fmt(s.get("test_acc"), 3), fmt(s.get("test_ndcg10"), 3),
                      fmt(s.get("wall_seconds"), 1))
    return table


StrategyOpt = Annotated[list[str] | None, typer.Option(
    "--strategy", "-s", help="plain, reweight, flood, reweight-flood or all; repeatable.")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML file of settings (see experiments/).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override any setting: --set key=value (repeatable).")]


def collect_overrides(options: dict[str, Any], pairs: list[str] | None) -> dict[str, Any]:
    """CLI overrides: the options the user gave (not None), then --set key=value pairs."""
    from lossbench.config import parse_set

    overrides = {k: v for k, v in options.items() if v is not None}
    overrides.update(parse_set(pairs or []))
    return overrides


@app.command()
def run(
    strategy: StrategyOpt = None,
    config: ConfigOpt = None,
    b: Annotated[float | None, typer.Option(help="Flood level b >= 0 (flood strategies).")] = None,
    alpha: Annotated[float | None, typer.Option(help="Reweight EMA rate, 0 < alpha <= 1.")] = None,
    lam: Annotated[float | None, typer.Option(help="Reweight lambda >= 0.")] = None,
    theta0: Annotated[float | None, typer.Option(help="Initial reweight theta.")] = None,
    detach_theta: Annotated[bool | None, typer.Option(
        "--detach-theta/--keep-theta-grad", help="Detach theta~ from the graph (CBiT) or "
        "keep its gradient (the seed's code, default).")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Number of seeds: seed, seed+1, ...")] = 1,
    seed: Annotated[int | None, typer.Option(min=0, help="First seed.")] = None,
    task: Annotated[str | None, typer.Option(help="synthetic (default) or movielens.")] = None,
    dataset: Annotated[str | None, typer.Option(help="movielens: ml-100k or ml-1m.")] = None,
    model: Annotated[str | None, typer.Option(help="sasrec or gru.")] = None,
    aux: Annotated[str | None, typer.Option(help="supcon or none (L_aux = 0).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    name: Annotated[str | None, typer.Option(
        help="Experiment folder name under --out (default: derived from the settings).")] = None,
    set_: SetOpt = None,
) -> None:
    """Train and compare strategies on the same data, initial weights and batch order."""
    from lossbench import api

    with guard():
        overrides = collect_overrides(
            {"b": b, "alpha": alpha, "lam": lam, "theta0": theta0, "detach_theta": detach_theta,
             "task": task, "dataset": dataset, "model": model, "aux": aux, "epochs": epochs,
             "device": device}, set_)
        if seed is not None:
            overrides["seed"] = seed
        n_runs = len(api.plan(strategy=strategy, config=config, seeds=seeds, **overrides))
        progress = make_progress()
        try:
            comparison = api.run(strategy=strategy, config=config, seeds=seeds, out=out,
                                 name=name, events=ProgressEvents(progress, n_runs),
                                 **overrides)
        finally:
            progress.stop()
        console.print(runs_table(comparison))
        console.print(f"results: {comparison.dir}")


def main() -> None:  # pragma: no cover - the console script
    app()

