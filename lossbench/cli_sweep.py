"""`lossbench sweep-b` and `lossbench sweep`: one parameter chosen on validation, test reported
at the chosen value (lossbench/sweep.py does the work).

Registered in cli.py with `app.command("sweep-b", ...)(sweep_b)` and `app.command("sweep",
...)(sweep)`. `sweep_command` imports cli.py's `guard`, `strategy_options` and `ensure_data`
when called, so cli.py may import this module at its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lossbench.cli_display import ProgressEvents, console, make_progress, sweep_table
from lossbench.cli_options import (
    AddressOpt,
    BackendOpt,
    ConfigOpt,
    DataDirOpt,
    DataFileOpt,
    DatasetOpt,
    DeviceOpt,
    EpochsOpt,
    FuseOpt,
    JobsOpt,
    NumCpusOpt,
    NumGpusOpt,
    OutOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    StorageOpt,
    TaskOpt,
    ThreadsOpt,
    collect_overrides,
)
from lossbench.errors import ConfigError

SelectOpt = Annotated[str, typer.Option(
    help="Validation metric that picks the value: val_loss, val_acc or val_ndcg10.")]
SweepSeedsOpt = Annotated[int, typer.Option(min=1, help="Seeds per value: seed, seed+1, ...")]


def sweep_b(
    ctx: typer.Context,
    strategy: Annotated[str, typer.Option(
        "--strategy", "-s", help="A flooded strategy: flood, reweight-flood, X-flood or "
        "X-iflood.")] = "flood",
    b_grid: Annotated[str | None, typer.Option(
        help="Comma-separated flood levels, e.g. 0.05,0.1,0.2.")] = None,
    b_range: Annotated[str | None, typer.Option(
        help="start:stop:num, evenly spaced and inclusive (like numpy.linspace).")] = None,
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


def sweep(
    ctx: typer.Context,
    param: Annotated[str, typer.Option(
        help="The parameter to sweep: b (as sweep-b) or one of the strategy's parameters "
        "(w, alpha, lam, dwa_temp, ...).")],
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="The strategy whose "
                                          "parameter is swept.")] = "weighted",
    grid: Annotated[str | None, typer.Option(
        help="Comma-separated values, e.g. 0.1,0.3,1.")] = None,
    range_: Annotated[str | None, typer.Option(
        "--range", help="start:stop:num, evenly spaced and inclusive.")] = None,
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
    from lossbench.cli import ensure_data, guard, strategy_options

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
                               config=config, out=out, events=ProgressEvents(progress, seeds),
                               on_grid=show_grid, **how, **overrides)
        finally:
            progress.stop()
        console.print(sweep_table(result))
        console.print(f"selected {param} = {result['selected']:g}: {result['why']}")
        console.print(f"results: {result['dir']}")
