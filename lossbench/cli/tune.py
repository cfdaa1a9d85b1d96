"""`lossbench tune`: every strategy tuned with the same budget on validation, the winners
retrained on fresh seeds, and the verdict (lossbench/runner/tune.py does the work).

    lossbench tune --strategy builtins --trials 20 --seeds 2 --final-seeds 5
    lossbench tune -s plain -s reweight-flood --tune lr --tune weight_decay --space b=0.6:1.0:rel
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lossbench.cli.app import app, guard
from lossbench.cli.data import ensure_data
from lossbench.cli.display import console
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
    JobsOpt,
    NumCpusOpt,
    NumGpusOpt,
    OutOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    StorageOpt,
    StrategyCommand,
    StrategyOpt,
    TaskOpt,
    ThreadsOpt,
    collect_overrides,
)
from lossbench.cli.progress import ProgressBars, make_progress, stop_progress
from lossbench.cli.results import print_verdict
from lossbench.cli.run import print_next, strategy_options
from lossbench.errors import ConfigError


@app.command("tune", cls=StrategyCommand, context_settings=STRATEGY_OPTIONS,
             short_help="Tune every strategy with the same budget; compare on fresh seeds.")
def tune_command(
    ctx: typer.Context,
    strategy: StrategyOpt = None,
    trials: Annotated[int, typer.Option(
        min=1, metavar="N", help="Trials per strategy: the same budget for every arm.")] = 20,
    seeds: Annotated[int, typer.Option(
        min=1, metavar="N", help="Tuning seeds: every trial trains on seed, seed+1, ...")] = 2,
    final_seeds: Annotated[int, typer.Option(
        min=2, metavar="N", help="Fresh seeds, disjoint from the tuning seeds, on which each "
        "chosen setting is retrained; the only runs whose test metrics are read.")] = 5,
    select: Annotated[str | None, typer.Option(
        metavar="METRIC", help="Validation metric that scores a trial (mean over tuning "
        "seeds at each run's best epoch): val_loss, val_acc, val_hr10 or val_ndcg10. "
        "Default: the config's best_by.")] = None,
    tune: Annotated[list[str] | None, typer.Option(
        "--tune", metavar="SETTING", help="A shared setting tuned for every arm, separately "
        "(repeatable; default lr; none for none): lr, weight_decay, momentum, dropout, "
        "label_smoothing, aux_tau_end, batch_size, ... any numeric one with a --space.")] = None,
    space: Annotated[list[str] | None, typer.Option(
        "--space", metavar="NAME=LO:HI[:log|:rel]|NAME=a,b,c", help="A tuning range "
        "(repeatable): log = sampled in log, rel = multiples of the configured value (of the "
        "no-flood baseline's training loss for b). Overrides the default range.")] = None,
    sampler: Annotated[str, typer.Option(
        metavar="tpe|random|qmc|grid", help="Optuna sampler.")] = "tpe",
    sampler_seed: Annotated[int, typer.Option(
        min=0, metavar="N", help="Seed of the sampler: the same command proposes the same "
        "trials.")] = 0,
    baselines: Annotated[bool, typer.Option(
        "--baselines/--no-baselines", help="Compare against main-only (L_aux off), plain and "
        "(when a weighting is compared) weighted, each tuned with the same budget.")] = True,
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
    """Tune every strategy with the same budget on validation (Optuna), retrain each choice
    on fresh seeds, and say whether it beats tuned plain and tuned weighted."""
    from lossbench import api  # here, not at the top: api imports torch, --help must not

    with guard():
        overrides = collect_overrides(
            {"epochs": epochs, "device": device, "seed": seed, "task": task,
             "dataset": dataset, "data_dir": data_dir, "data": data}, set_)
        if "strategy" in overrides:
            raise ConfigError("a tune takes its strategies from --strategy, not --set "
                              f"strategy={overrides['strategy']}")
        overrides.update(strategy_options(ctx, strategy, config))
        ensure_data(api.base_config(config, **overrides))
        progress = make_progress()

        def show_trial(arm: str, record: dict[str, Any]) -> None:
            params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in record["params"].items()) or "(defaults)"
            failed = f", {len(record['diverged'])} diverged" if record["diverged"] else ""
            progress.console.print(f"{arm} trial {record['number'] + 1}/{trials}: {params} -> "
                                   f"{record['score']:.4f} (best {record['best']:.4f}{failed})",
                                   markup=False, highlight=False)

        try:
            result = api.tune(strategy=strategy, trials=trials, seeds=seeds,
                              final_seeds=final_seeds, select=select, tune=tune, space=space,
                              sampler=sampler, sampler_seed=sampler_seed, baselines=baselines,
                              config=config, out=out, events=ProgressBars(progress),
                              on_trial=show_trial, jobs=jobs, threads=threads,
                              restart=not resume, fuse=fuse, backend=backend, address=address,
                              storage=storage, num_cpus=num_cpus, num_gpus=num_gpus,
                              command=shlex.join(["lossbench", *sys.argv[1:]]), **overrides)
        finally:
            stop_progress(progress)
        summary, paths = api.report(result["dir"])
        print_verdict(summary)
        for path in paths:
            console.print(f"wrote {path}", markup=False, highlight=False)
        print_next(result["dir"])
