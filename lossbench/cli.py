"""The `lossbench` command. Thin: parse options, call the library, show progress and tables.

Every command goes through `guard`, the one place where bad input (`LossbenchError`) becomes
`error: ...` on stderr and exit code 2. Malformed options are reported the same way
(`OneLineErrors`), so exit code 2 always means "your input is wrong".
"""

from __future__ import annotations

import signal
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.table import Table
from typer.core import TyperGroup

from lossbench.cli_options import (
    STRATEGY_OPTIONS,
    AddressOpt,
    BackendOpt,
    ConfigOpt,
    DataDirOpt,
    DataFileOpt,
    DatasetOpt,
    DeviceOpt,
    EpochsOpt,
    FuseOpt,
    ItemColOpt,
    JobsOpt,
    KCoreOpt,
    MinRatingOpt,
    NumCpusOpt,
    NumGpusOpt,
    OutOpt,
    RatingColOpt,
    ReadOutOpt,
    ResultsArg,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    StorageOpt,
    StrategyOpt,
    TaskOpt,
    ThreadsOpt,
    TimeColOpt,
    UserColOpt,
    collect_overrides,
    parse_strategy_options,
    strategy_help,
)
from lossbench.cli_sweep import sweep, sweep_b
from lossbench.errors import LossbenchError, Terminated, raise_terminated

# Typer vendors click in recent releases (typer._click) and depends on click in older ones.
_click = getattr(typer.core, "_click", None) or __import__("click")
ClickException = _click.ClickException
NoArgsIsHelpError = getattr(_click.exceptions, "NoArgsIsHelpError", ())
Abort = getattr(typer.core, "Abort", None) or getattr(_click.exceptions, "Abort", ())

from lossbench.cli_display import (  # noqa: E402
    ProgressEvents,
    console,
    err_console,
    make_progress,
    print_flood_advice,
    print_group_tables,
    runs_table,
)


class OneLineErrors(TyperGroup):
    """Report usage errors (unknown option, bad value) as one `error:` line, exit code 2."""

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
                  pretty_exceptions_enable=False,
                  help="Paired comparisons of ways to combine a main and an auxiliary loss: "
                       "the seed's plain, reweight, flood and reweight-flood, the field's "
                       "baselines (lossbench strategies) and your own.")


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



@app.command(context_settings=STRATEGY_OPTIONS, epilog=strategy_help())
def run(
    ctx: typer.Context,
    strategy: StrategyOpt = None,
    config: ConfigOpt = None,
    b: Annotated[float | None, typer.Option(help="Flood level b >= 0 (flooded strategies).")
                 ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Number of seeds: seed, seed+1, ...")] = 1,
    seed: SeedOpt = None,
    task: TaskOpt = None,
    dataset: DatasetOpt = None,
    model: Annotated[str | None, typer.Option(help="sasrec or gru.")] = None,
    aux: Annotated[str | None, typer.Option(help="supcon or none (L_aux = 0).")] = None,
    epochs: EpochsOpt = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    data: DataFileOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    rating_col: RatingColOpt = None,
    min_rating: MinRatingOpt = None,
    k_core: KCoreOpt = None,
    jobs: JobsOpt = "auto",
    threads: ThreadsOpt = None,
    out: OutOpt = Path("results"),
    name: Annotated[str | None, typer.Option(
        help="Experiment folder name under --out (default: derived from the settings).")] = None,
    resume: ResumeOpt = True,
    fuse: FuseOpt = None,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    storage: StorageOpt = None,
    num_cpus: NumCpusOpt = None,
    num_gpus: NumGpusOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train and compare strategies on the same data, initial weights and batch order."""
    from lossbench import api

    with guard():
        overrides = collect_overrides(
            {"b": b, "task": task, "dataset": dataset, "model": model, "aux": aux,
             "epochs": epochs, "device": device, "data_dir": data_dir, "data": data,
             "user_col": user_col, "item_col": item_col, "time_col": time_col,
             "rating_col": rating_col, "min_rating": min_rating, "k_core": k_core,
             "seed": seed}, set_)
        if "strategy" in overrides:  # --set strategy=X counts as --strategy X
            strategy = [*(strategy or []), overrides.pop("strategy")]
        overrides.update(strategy_options(ctx, strategy))
        runs = api.plan(strategy=strategy, config=config, seeds=seeds, **overrides)
        ensure_data(runs[0])
        n_runs = len(runs)
        progress = make_progress()
        try:
            comparison = api.run(strategy=strategy, config=config, seeds=seeds, out=out,
                                 name=name, events=ProgressEvents(progress, n_runs),
                                 jobs=jobs, threads=threads, restart=not resume, fuse=fuse,
                                 backend=backend, address=address, storage=storage,
                                 num_cpus=num_cpus, num_gpus=num_gpus, **overrides)
        finally:
            progress.stop()
        console.print(runs_table(comparison))
        print_flood_advice(comparison)
        if len(comparison.runs) > 1:
            print_group_tables(comparison.dir)
        console.print(f"results: {comparison.dir}")
        console.print(f"next: lossbench report {comparison.dir}  |  "
                      f"lossbench plot {comparison.dir}")


def strategy_options(ctx: typer.Context, strategies: list[str] | None) -> dict[str, Any]:
    """The strategy parameters given as options (`--alpha 0.3`), after loading the plugins
    that --strategy names (so that their parameters are known too)."""
    from lossbench import strategies as registry

    registry.expand([s for s in strategies or [] if s not in registry.GROUPS])
    return parse_strategy_options(ctx.args)


app.command("sweep-b", context_settings=STRATEGY_OPTIONS, epilog=strategy_help())(sweep_b)
app.command("sweep", context_settings=STRATEGY_OPTIONS, epilog=strategy_help())(sweep)


@app.command("strategies")
def strategies_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """Every registered strategy: flooded variants, parameters with defaults and ranges,
    logged state, the baseline it is compared with, and its citation."""
    import json

    from lossbench import api

    with guard():
        rows = api.strategies()
        if as_json:
            print(json.dumps(rows, indent=2, default=str))
            return
        table = Table(title="lossbench strategies (any weighting X also as X-flood: |L - b| + "
                            "b on the total, and X-iflood: per L_main example)")
        for column in ("strategy", "what it does", "parameters (default, range)", "logs",
                       "baseline", "citation"):
            table.add_column(column, overflow="fold")
        for row in rows:
            params = "\n".join(f"{p['name']} = {p['default']}"
                               + (f" ({p['range']})" if p["range"] else "")
                               for p in row["params"]) or "-"
            kind = " [gradients]" if row["gradients"] else ""
            table.add_row(row["name"] + kind, row["doc"], params,
                          ", ".join(row["logs"]) or "-", row["baseline"], row["citation"])
        console.print(table)
        console.print("groups: all = plain, reweight, flood, reweight-flood (the seed's four); "
                      "builtins = every built-in weighting + flood, reweight-flood, iflood. "
                      "Plugins: --strategy module:Class or the entry-point group "
                      "lossbench.strategies.", markup=False, highlight=False)


def chosen_folder(results_dir: Path | None, out: Path) -> Path:
    """RESULTS_DIR as given, else the most recently written results folder under `out`,
    announced (so the user knows which one was read)."""
    from lossbench import report

    if results_dir is not None:
        return results_dir
    folder = report.latest_results(out)
    console.print(f"using the most recent results folder: {folder}", markup=False,
                  highlight=False)
    return folder


@app.command("report")
def report_command(
    results_dir: ResultsArg = None,
    out: ReadOutOpt = Path("results"),
    window: Annotated[int, typer.Option(help="Moving-average window for double descent.")] = 5,
    rise: Annotated[float, typer.Option(help="Peak must be >= rise x first minimum.")] = 1.03,
    recover: Annotated[float, typer.Option(
        help="Fraction of the rise the second descent must win back.")] = 0.3,
) -> None:
    """Statistics over seeds: mean +- 95 % CI, paired tests against plain, double descent."""
    from lossbench import api, report_tables

    with guard():
        summary, paths = api.report(chosen_folder(results_dir, out), window=window, rise=rise,
                                    recover=recover)
        for table in report_tables.render_tables(summary):
            console.print(table)
        for path in paths:
            console.print(f"wrote {path}")


@app.command("plot")
def plot_command(
    results_dir: ResultsArg = None,
    out: ReadOutOpt = Path("results"),
    format_: Annotated[str, typer.Option("--format", help="png, svg or pdf.")] = "png",
    log_loss: Annotated[bool, typer.Option("--log-loss", help="Log scale for losses.")] = False,
) -> None:
    """Figures of a results folder into RESULTS_DIR/plots/: losses, metrics, theta, sweep."""
    from lossbench import api

    with guard():
        for path in api.plot(chosen_folder(results_dir, out), fmt=format_, log_loss=log_loss):
            console.print(str(path))


from lossbench.cli_data import data_app, ensure_data  # noqa: E402  (the data commands use guard)
from lossbench.cli_export import export_command  # noqa: E402

app.add_typer(data_app, name="data")
app.command("export")(export_command)
