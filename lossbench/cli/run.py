"""`lossbench run`, `lossbench sweep-b` and `lossbench sweep`: train runs, with progress, then
their tables and where the results are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lossbench import strategies as registry
from lossbench.bundled import resolve_config
from lossbench.cli.app import app, guard
from lossbench.cli.data import ensure_data
from lossbench.cli.display import (
    console,
    print_flood_advice,
    print_group_tables,
    runs_table,
    sweep_table,
)
from lossbench.cli.options import (
    STRATEGY_OPTIONS,
    AddressOpt,
    BackendOpt,
    BExampleOpt,
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
from lossbench.cli.progress import ProgressBars, make_progress, stop_progress
from lossbench.config import read_toml, resolve_strategy
from lossbench.errors import ConfigError


@app.command(cls=StrategyCommand, context_settings=STRATEGY_OPTIONS,
             short_help="Train and compare strategies in paired runs.")
def run(
    ctx: typer.Context,
    strategy: StrategyOpt = None,
    config: ConfigOpt = None,
    b: Annotated[float | None, typer.Option(
        metavar="B", help="Flood level b >= 0 (flooded strategies).")] = None,
    b_example: BExampleOpt = None,
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
    from lossbench import api  # here, not at the top: api imports torch, --help must not

    with guard():
        overrides = collect_overrides(
            {"b": b, "b_example": b_example, "task": task, "dataset": dataset, "model": model,
             "aux": aux, "epochs": epochs, "device": device, "data_dir": data_dir, "data": data,
             "user_col": user_col, "item_col": item_col, "time_col": time_col,
             "rating_col": rating_col, "min_rating": min_rating, "k_core": k_core,
             "seed": seed}, set_)
        if "strategy" in overrides:  # --set strategy=X counts as --strategy X
            strategy = [*(strategy or []), overrides.pop("strategy")]
        overrides.update(strategy_options(ctx, strategy, config))
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


def strategy_options(ctx: typer.Context, strategies: list[str] | None,
                     config: Path | None) -> dict[str, Any]:
    """The strategy parameters given as options (`--alpha 0.3`), after loading the plugins
    that --strategy or the config file names (so that their parameters are options too)."""
    registry.expand([s for s in strategies or [] if s not in registry.GROUPS])
    if config is not None:
        resolve_strategy(read_toml(resolve_config(config)).get("strategy"))
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
    from lossbench import api  # here, not at the top: api imports torch, --help must not

    with guard():
        overrides = collect_overrides(options, pairs)
        if "strategy" in overrides:
            raise ConfigError("a sweep takes its strategy from --strategy, not --set strategy="
                              f"{overrides['strategy']}")
        overrides.update(strategy_options(ctx, [strategy], config))
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
