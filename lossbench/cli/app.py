"""The `lossbench` command. Thin: parse options, call the library, show progress and tables.

Every command goes through `guard`, the one place where bad input (`LossbenchError`) becomes
`error: ...` on stderr and exit code 2. Malformed options are reported the same way
(`OneLineErrors`), so exit code 2 always means "your input is wrong".
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.text import Text
from typer.core import TyperGroup

from lossbench.cli.options import (
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
    StrategyCommand,
    StrategyOpt,
    TaskOpt,
    ThreadsOpt,
    TimeColOpt,
    UserColOpt,
    collect_overrides,
    parse_strategy_options,
)
from lossbench.errors import ConfigError, LossbenchError, Terminated, raise_terminated

# Typer vendors click in recent releases (typer._click) and depends on click in older ones.
_click = getattr(typer.core, "_click", None) or __import__("click")
ClickException = _click.ClickException
NoArgsIsHelpError = getattr(_click.exceptions, "NoArgsIsHelpError", ())
Abort = getattr(typer.core, "Abort", None) or getattr(_click.exceptions, "Abort", ())

from lossbench.cli.display import (  # noqa: E402
    console,
    err_console,
    print_flood_advice,
    print_group_tables,
    runs_table,
    sweep_table,
)
from lossbench.cli.progress import ProgressBars, make_progress, stop_progress  # noqa: E402


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



@app.command(cls=StrategyCommand, context_settings=STRATEGY_OPTIONS,
             short_help="Train and compare strategies in paired runs.")
def run(
    ctx: typer.Context,
    strategy: StrategyOpt = None,
    config: ConfigOpt = None,
    b: Annotated[float | None, typer.Option(
        metavar="B", help="Flood level b >= 0 (flooded strategies).")] = None,
    seeds: Annotated[int, typer.Option(
        min=1, metavar="N", help="Number of seeds: seed, seed+1, ...")] = 1,
    seed: SeedOpt = None,
    task: TaskOpt = None,
    dataset: DatasetOpt = None,
    model: Annotated[str | None, typer.Option(metavar="NAME", help="sasrec or gru.")] = None,
    aux: Annotated[str | None, typer.Option(
        metavar="NAME", help="supcon or none (L_aux = 0).")] = None,
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
        metavar="NAME",
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
        progress = make_progress()
        try:
            comparison = api.run(strategy=strategy, config=config, seeds=seeds, out=out,
                                 name=name, events=ProgressBars(progress),
                                 jobs=jobs, threads=threads, restart=not resume, fuse=fuse,
                                 backend=backend, address=address, storage=storage,
                                 num_cpus=num_cpus, num_gpus=num_gpus, **overrides)
        finally:
            stop_progress(progress)
        console.print(runs_table(comparison))
        print_flood_advice(comparison)
        if len(comparison.runs) > 1:
            print_group_tables(comparison.dir)
        print_next(comparison.dir)


def print_next(folder: Path | str) -> None:
    """Where the results are and what to run next (after `run`, `sweep` and `sweep-b`)."""
    console.print(f"results: {folder}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"next: lossbench report {folder}  |  lossbench plot {folder}",
                  markup=False, highlight=False, soft_wrap=True)  # whole, to copy and paste


def strategy_options(ctx: typer.Context, strategies: list[str] | None) -> dict[str, Any]:
    """The strategy parameters given as options (`--alpha 0.3`), after loading the plugins
    that --strategy names (so that their parameters are known too)."""
    from lossbench import strategies as registry

    registry.expand([s for s in strategies or [] if s not in registry.GROUPS])
    return parse_strategy_options(ctx.args)


SelectOpt = Annotated[str, typer.Option(
    metavar="METRIC",
    help="Validation metric that picks the value: val_loss, val_acc or val_ndcg10.")]
SweepSeedsOpt = Annotated[int, typer.Option(
    min=1, metavar="N", help="Seeds per value: seed, seed+1, ...")]


@app.command("sweep-b", cls=StrategyCommand, context_settings=STRATEGY_OPTIONS,
             short_help="Sweep the flood level b; choose it on validation.")
def sweep_b(
    ctx: typer.Context,
    strategy: Annotated[str, typer.Option(
        "--strategy", "-s", metavar="NAME", help="A flooded strategy: flood, reweight-flood, "
        "X-flood or X-iflood.")] = "flood",
    b_grid: Annotated[str | None, typer.Option(
        metavar="B,B,...", help="Comma-separated flood levels, e.g. 0.05,0.1,0.2.")] = None,
    b_range: Annotated[str | None, typer.Option(
        metavar="START:STOP:NUM",
        help="Evenly spaced and inclusive (like numpy.linspace).")] = None,
    select: SelectOpt = "val_loss",
    seeds: SweepSeedsOpt = 3,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    task: TaskOpt = None,
    dataset: DatasetOpt = None,
    epochs: EpochsOpt = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    data: DataFileOpt = None,
    jobs: JobsOpt = "auto",
    threads: ThreadsOpt = None,
    out: OutOpt = Path("results"),
    resume: ResumeOpt = True,
    fuse: FuseOpt = None,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    storage: StorageOpt = None,
    num_cpus: NumCpusOpt = None,
    num_gpus: NumGpusOpt = None,
    set_: SetOpt = None,
) -> None:
    """Sweep the flood level b: select it on validation, report test at the selected b."""
    sweep_command(ctx, strategy, "b", b_grid, b_range, select, seeds, config, out, set_,
                  {"epochs": epochs, "device": device, "seed": seed, "task": task,
                   "dataset": dataset, "data_dir": data_dir, "data": data},
                  {"jobs": jobs, "threads": threads, "restart": not resume, "fuse": fuse,
                   "backend": backend, "address": address, "storage": storage,
                   "num_cpus": num_cpus, "num_gpus": num_gpus})


@app.command("sweep", cls=StrategyCommand, context_settings=STRATEGY_OPTIONS,
             short_help="Sweep one strategy parameter; choose it on validation.")
def sweep(
    ctx: typer.Context,
    param: Annotated[str, typer.Option(
        metavar="NAME", help="The parameter to sweep: b (as sweep-b) or one of the "
        "strategy's parameters (w, alpha, lam, dwa_temp, ...).")],
    strategy: Annotated[str, typer.Option(
        "--strategy", "-s", metavar="NAME",
        help="The strategy whose parameter is swept.")] = "weighted",
    grid: Annotated[str | None, typer.Option(
        metavar="V,V,...", help="Comma-separated values, e.g. 0.1,0.3,1.")] = None,
    range_: Annotated[str | None, typer.Option(
        "--range", metavar="START:STOP:NUM", help="Evenly spaced and inclusive.")] = None,
    select: SelectOpt = "val_loss",
    seeds: SweepSeedsOpt = 3,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    task: TaskOpt = None,
    dataset: DatasetOpt = None,
    epochs: EpochsOpt = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    data: DataFileOpt = None,
    jobs: JobsOpt = "auto",
    threads: ThreadsOpt = None,
    out: OutOpt = Path("results"),
    resume: ResumeOpt = True,
    fuse: FuseOpt = None,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    storage: StorageOpt = None,
    num_cpus: NumCpusOpt = None,
    num_gpus: NumGpusOpt = None,
    set_: SetOpt = None,
) -> None:
    """Sweep one parameter of a strategy (e.g. --strategy weighted --param w): select it on
    validation only, report test at the selected value."""
    sweep_command(ctx, strategy, param, grid, range_, select, seeds, config, out, set_,
                  {"epochs": epochs, "device": device, "seed": seed, "task": task,
                   "dataset": dataset, "data_dir": data_dir, "data": data},
                  {"jobs": jobs, "threads": threads, "restart": not resume, "fuse": fuse,
                   "backend": backend, "address": address, "storage": storage,
                   "num_cpus": num_cpus, "num_gpus": num_gpus})


def sweep_command(ctx: typer.Context, strategy: str, param: str, grid: str | None,
                  value_range: str | None, select: str, seeds: int, config: Path | None,
                  out: Path, pairs: list[str] | None, options: dict[str, Any],
                  how: dict[str, Any]) -> None:
    """What `sweep` and `sweep-b` do: run api.sweep with progress, then its table. `options`
    are settings, `how` where and how the runs go (jobs, threads, restart, fuse, backend)."""
    from lossbench import api

    with guard():
        overrides = collect_overrides(options, pairs)
        if "strategy" in overrides:
            raise ConfigError("a sweep takes its strategy from --strategy, not --set strategy="
                              f"{overrides['strategy']}")
        overrides.update(strategy_options(ctx, [strategy]))
        if param in overrides:
            raise ConfigError(f"'{param}' is the swept parameter: give its values with the "
                              "grid, not as a setting")
        ensure_data(api.base_config(config, **overrides))
        progress = make_progress()

        def show_grid(values: list[float], level: float | None) -> None:
            origin = (f"from the baseline's training loss at its best epoch ({level:.4g})"
                      if level is not None else "as given")
            extra = " (+ b = 0, the no-flood baseline)" if param == "b" else ""
            progress.console.print(f"{param} grid {origin}: "
                                   f"{', '.join(f'{v:g}' for v in values)}{extra}")

        try:
            result = api.sweep(strategy=strategy, param=param, grid=grid,
                               value_range=value_range, select=select, seeds=seeds,
                               config=config, out=out, events=ProgressBars(progress),
                               on_grid=show_grid, **how, **overrides)
        finally:
            stop_progress(progress)
        console.print(sweep_table(result))
        console.print(f"selected {param} = {result['selected']:g}: {result['why']}")
        print_next(result["dir"])


@app.command("strategies", short_help="List every strategy: formula, parameters, citation.")
def strategies_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """Every registered strategy: its formula, parameters with defaults and ranges, logged
    state, flooded variants, the baseline it is compared with, and its citation; then the
    flooding modifiers and their flood levels."""
    from lossbench import api

    with guard():
        rows = api.strategies()
        if as_json:
            print(json.dumps(rows, indent=2, default=str))
            return
        for row in rows:
            console.print(strategy_block(row), highlight=False)
        console.print("Groups: all = plain, reweight, flood, reweight-flood; builtins = every "
                      "built-in weighting, flood, reweight-flood, iflood. Plugins: --strategy "
                      "module:Class, or the entry-point group lossbench.strategies.",
                      markup=False, highlight=False)


def strategy_block(row: dict) -> Text:
    """One strategy of `lossbench strategies`: its name, formula, parameters, logs, flooded
    variants, baseline and citation, as lines that wrap in any terminal width."""
    kind = " (combines gradients)" if row["gradients"] else ""
    text = Text(f"{row['name']}{kind}\n", style="bold")
    text.append(textwrap.indent(row["doc"], "    ") + "\n")
    for p in row["params"]:
        bound = f", {p['range']}" if p["range"] else ""
        text.append(f"  --{p['name'].replace('_', '-')} {p['type']} = {p['default']}{bound}: "
                    f"{p['doc']}\n")
    facts = [("logs", ", ".join(row["logs"])), ("as", ", ".join(row["variants"])),
             ("compared with", row["baseline"]), ("citation", row["citation"])]
    for name, value in facts:
        if value and value != "-":
            text.append(f"  {name}: {value}\n")
    return text


def chosen_folder(results_dir: Path | None, out: Path) -> Path:
    """RESULTS_DIR as given, else the most recently written results folder under `out`,
    announced (so the user knows which one was read)."""
    from lossbench.results import report

    if results_dir is not None:
        return results_dir
    folder = report.latest_results(out)
    console.print(f"using the most recent results folder: {folder}", markup=False,
                  highlight=False)
    return folder


@app.command("report", short_help="Statistics over seeds: mean, 95 % CI, paired tests.")
def report_command(
    results_dir: ResultsArg = None,
    out: ReadOutOpt = Path("results"),
    window: Annotated[int, typer.Option(
        metavar="N", help="Moving-average window for double descent.")] = 5,
    rise: Annotated[float, typer.Option(
        metavar="X", help="Peak must be >= rise x first minimum.")] = 1.03,
    recover: Annotated[float, typer.Option(
        metavar="FRACTION",
        help="Fraction of the rise the second descent must win back.")] = 0.3,
) -> None:
    """Statistics over seeds: mean +- 95 % CI, paired tests against plain, double descent."""
    from lossbench import api
    from lossbench.results import tables as report_tables

    with guard():
        summary, paths = api.report(chosen_folder(results_dir, out), window=window, rise=rise,
                                    recover=recover)
        for table in report_tables.render_tables(summary):
            console.print(table)
        for path in paths:
            console.print(f"wrote {path}")


@app.command("plot", short_help="Draw a results folder's figures.")
def plot_command(
    results_dir: ResultsArg = None,
    out: ReadOutOpt = Path("results"),
    format_: Annotated[str, typer.Option(
        "--format", metavar="png|svg|pdf", help="Figure file format.")] = "png",
    log_loss: Annotated[bool, typer.Option("--log-loss", help="Log scale for losses.")] = False,
) -> None:
    """Figures of a results folder into RESULTS_DIR/plots/: losses, metrics, theta, sweep."""
    from lossbench import api

    with guard():
        for path in api.plot(chosen_folder(results_dir, out), fmt=format_, log_loss=log_loss):
            console.print(str(path))


from lossbench.cli.data import data_app, ensure_data  # noqa: E402  (the data commands use guard)
from lossbench.cli.experiments import EXPERIMENTS_HELP, experiments_command  # noqa: E402
from lossbench.cli.export import export_command  # noqa: E402

app.add_typer(data_app, name="data",
              short_help="Describe your interactions file; download MovieLens.")
app.command("export", short_help="Export runs to MLflow or TensorBoard.")(export_command)
app.command("experiments", short_help=EXPERIMENTS_HELP)(experiments_command)
