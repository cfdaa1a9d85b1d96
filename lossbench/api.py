"""The Python API; each function mirrors a CLI command and takes the same options.

    from lossbench import api
    comparison = api.run(strategy=["all"], seeds=3, epochs=20)     # lossbench run -s all ...
    comparison = api.run(strategy="flood", b=0.1, config="experiments/synthetic.toml")

Keyword arguments other than the command's own options are settings (RunConfig fields) and
override the config file, exactly like the CLI's options and `--set key=value`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lossbench.config import RunConfig, load_config
from lossbench.errors import ConfigError
from lossbench.events import Events
from lossbench.results import export as export_module
from lossbench.results import report as report_module
from lossbench.results import verdict
from lossbench.results.export import DEFAULT_TRACKING_URI
from lossbench.results.migrate import migrate as migrate_folders
from lossbench.results.tables import write_report
from lossbench.results.verdict_tables import write_verdict
from lossbench.runner.local import Comparison, run_comparison
from lossbench.runner.plan import plan_runs
from lossbench.runner.ray_backend import require_ray
from lossbench.runner.ray_options import RayOptions
from lossbench.runner.sweep import parse_grid
from lossbench.runner.sweep import sweep as run_sweep
from lossbench.runner.tune import tune as run_tune
from lossbench.strategies import Param, all_params, describe
from lossbench.strategies.registry import describe_flooding


def base_config(config: str | Path | None = None, **settings: Any) -> RunConfig:
    """Defaults, then the TOML file `config`, then `settings`."""
    return load_config(config, settings)


def as_list(strategy: str | list[str] | None, base: RunConfig) -> list[str]:
    """The strategies to run: the argument, else the config's `strategy` (default plain)."""
    if not strategy:
        return [base.strategy.name]
    return [strategy] if isinstance(strategy, str) else list(strategy)


def plan(strategy: str | list[str] | None = None, config: str | Path | None = None,
         seeds: int = 1, **settings: Any) -> list[RunConfig]:
    """The runs `run` would make, validated, without running anything."""
    base = base_config(config, **settings)
    return plan_runs(base, as_list(strategy, base), [base.seed + i for i in range(seeds)])


def workers(jobs: int | str, backend: str = "local", address: str | None = None,
            storage: str | Path | None = None, num_cpus: float | None = None,
            num_gpus: float | None = None) -> Any:
    """Where the runs go: `jobs` for the local backend, a `ray_backend.RayOptions` for
    backend "ray" (Ray must be installed: checked here, before anything is written). The
    Ray options with the local backend are a ConfigError."""
    if backend == "local":
        given = [name for name, value in (("--address", address), ("--storage", storage),
                 ("--num-cpus", num_cpus), ("--num-gpus", num_gpus)) if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} "
                              "only for --backend ray")
        return jobs
    if backend != "ray":
        raise ConfigError(f"--backend must be local or ray, got '{backend}'")

    require_ray()
    resources = {k: float(v) for k, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus))
                 if v is not None}
    return RayOptions(address=address, storage=None if storage is None else str(storage),
                      **resources)


def run(strategy: str | list[str] | None = None, config: str | Path | None = None,
        seeds: int = 1, out: str | Path = "results", name: str | None = None,
        events: Events | None = None, jobs: int | str = 1, threads: int | None = None,
        restart: bool = False, backend: str = "local", address: str | None = None,
        storage: str | Path | None = None, num_cpus: float | None = None,
        num_gpus: float | None = None, fuse: bool | None = None,
        **settings: Any) -> Comparison:
    """`lossbench run`: every strategy on seeds seed .. seed + seeds - 1, paired; `jobs`
    worker processes (an int or "auto"), `threads` torch threads per run (default 1), and
    with `restart` unfinished runs start afresh instead of from their checkpoint.

    The CLI's default is `--jobs auto`; here it is 1, because worker processes re-import
    the main module (workers.worker_context) and a script that starts them must guard
    its top level with `if __name__ == "__main__":`. Results are the same either way (one
    torch thread per run).

    `backend="ray"` runs every run as a Ray task instead (`jobs` is then unused): `address`
    of a cluster (default: $RAY_ADDRESS, else a local Ray on all cores; a Ray session
    already initialised in this process is used as it is), `storage` for checkpoints (a
    path or fsspec URL; default: the results folder), `num_cpus` / `num_gpus` per run
    (default 1 / 0; fractions allowed). See lossbench/runner/ray_backend.py.

    `fuse`: train the fusable runs of each seed as one stacked model (lossbench/training/fused.py);
    None (default) fuses with CUDA and not on the CPU."""
    where = workers(jobs, backend, address, storage, num_cpus, num_gpus)
    base = base_config(config, **settings)
    return run_comparison(base, as_list(strategy, base), [base.seed + i for i in range(seeds)],
                          out=out, name=name, events=events, jobs=where,
                          threads=threads, restart=restart, fuse=fuse)


def sweep(strategy: str = "weighted", param: str = "w", grid: str | list[float] | None = None,
          value_range: str | None = None, select: str = "val_loss", seeds: int = 3,
          config: str | Path | None = None, out: str | Path = "results",
          events: Events | None = None, on_grid=None, jobs: int | str = 1,
          threads: int | None = None, restart: bool = False, backend: str = "local",
          address: str | None = None, storage: str | Path | None = None,
          num_cpus: float | None = None, num_gpus: float | None = None,
          fuse: bool | None = None, **settings: Any) -> dict:
    """`lossbench sweep`: every value of `grid` (a list of floats or the CLI's
    comma-separated string; or `value_range` start:stop:num) of the strategy parameter
    `param`, chosen on validation; returns the content of sweep.json plus its folder under
    "dir". `param = "b"` is `sweep_b`. `backend`, the Ray options and `fuse`: as in
    `run` (a b grid of one seed fuses into one stacked model)."""

    jobs = workers(jobs, backend, address, storage, num_cpus, num_gpus)
    if isinstance(grid, list | tuple):
        grid = ",".join(repr(float(v)) for v in grid)
    names = ("--b-grid", "--b-range") if param == "b" else ("--grid", "--range")
    values = parse_grid(grid, value_range, names, non_negative=param == "b")
    base = base_config(config, **settings)
    return run_sweep(base, strategy=strategy, param=param, grid=values, select=select,
                     out=out, seeds=[base.seed + i for i in range(seeds)], events=events,
                     on_grid=on_grid, jobs=jobs, threads=threads, restart=restart,
                     fuse=fuse)


def sweep_b(strategy: str = "flood", b_grid: str | list[float] | None = None,
            b_range: str | None = None, **kwargs: Any) -> dict:
    """`lossbench sweep-b`: `sweep` of the flood level b (default grid from the no-flood
    baseline's training loss when no grid is given)."""
    return sweep(strategy=strategy, param="b", grid=b_grid, value_range=b_range, **kwargs)


def tune(strategy: str | list[str] | None = None, trials: int = 20, seeds: int = 2,
         final_seeds: int = 5, select: str | None = None,
         tune: str | list[str] | None = None, space: str | list[str] | None = None,
         sampler: str = "tpe", sampler_seed: int = 0, baselines: bool = True,
         config: str | Path | None = None, out: str | Path = "results",
         events: Events | None = None, on_trial=None, jobs: int | str = 1,
         threads: int | None = None, restart: bool = False, backend: str = "local",
         address: str | None = None, storage: str | Path | None = None,
         num_cpus: float | None = None, num_gpus: float | None = None,
         fuse: bool | None = None, command: str | None = None, **settings: Any) -> dict:
    """`lossbench tune`: every strategy (and the baselines main-only, plain and, when a
    weighting is compared, weighted, unless `baselines=False`) gets `trials` trials on
    `seeds` tuning seeds, scored by `select` on validation (default the config's best_by);
    each arm's best setting is retrained on `final_seeds` fresh seeds. Returns tune.json's
    content plus its folder under "dir" (lossbench/runner/tune.py).

    `tune`: the shared settings tuned for every arm (default "lr"; "none" for none);
    `space`: ranges, `NAME=LO:HI[:log][:rel]` or `NAME=a,b,c` (a setting named there is
    tuned too); `sampler`: tpe, random, qmc or grid, seeded by `sampler_seed`. A strategy
    parameter given here as a setting (`alpha=0.3`) is fixed: left out of the search. A
    config file's values are where untuned settings stay, and what `:rel` ranges multiply.
    `jobs`, `backend`, the Ray options and `fuse`: as in `run`."""
    where = workers(jobs, backend, address, storage, num_cpus, num_gpus)
    base = base_config(config, **settings)
    tuned = [tune] if isinstance(tune, str) else list(tune) if tune is not None else None
    if tuned == ["none"]:
        tuned = []
    items = [space] if isinstance(space, str) else list(space or [])
    fixed = {name for name in settings if name in all_params()}
    return run_tune(base, as_list(strategy, base), trials=trials, seeds=seeds,
                    final_seeds=final_seeds, select=select, tuned=tuned, space=items,
                    fixed=fixed, sampler=sampler, sampler_seed=sampler_seed,
                    baselines=baselines, out=out, events=events, on_trial=on_trial,
                    jobs=where, threads=threads, restart=restart, fuse=fuse, command=command)


def strategies() -> list[dict]:
    """`lossbench strategies`: every registered weighting (plugins from entry points too)
    with its flooded variants, formula, parameters, defaults, baseline and citation, then
    the flooding modifiers (X-flood, X-iflood, X-adaflood) with their flood-level settings
    and parameters."""

    defaults = RunConfig()
    b = Param("b", defaults.strategy.b, "flood level of X-flood, on the scale of the weighted "
              "total", lo=0.0)
    b_example = Param("b_example", defaults.strategy.b_example, "flood level of X-iflood, on the "
                      "scale of one L_main example; negative = b")
    return describe() + describe_flooding(b, b_example)


def report(results_dir: str | Path, window: int = 5, rise: float = 1.03,
           recover: float = 0.3) -> tuple[dict, list[Path]]:
    """`lossbench report`: the summary dict and the paths of report.json / report.md. For a
    tune folder (`tune`'s, with tune.json) the summary is the verdict (`kind` "tune-report";
    results/verdict.py) and `window`, `rise`, `recover` are unused."""

    if window < 1 or rise < 1.0 or not 0.0 < recover <= 1.0:
        raise ConfigError("need --window >= 1, --rise >= 1 and 0 < --recover <= 1")
    tuned = verdict.load_tune(results_dir)
    if tuned is not None:  # a tune folder: the verdict (results/verdict.py)
        summary = verdict.summarize_tune(tuned)
        return summary, write_verdict(summary, results_dir)
    runs = report_module.load_runs(results_dir)
    summary = report_module.summarize(runs, window=window, rise=rise, recover=recover)
    return summary, write_report(summary, results_dir)


def plot(results_dir: str | Path, fmt: str = "png", log_loss: bool = False) -> list[Path]:
    """`lossbench plot`: figures into RESULTS_DIR/plots/; returns their paths. A tune folder
    gets the tune's figures (results/plot_tune.py: optimisation history, final comparison,
    score against each tuned parameter)."""
    from lossbench.results import plot as plot_module  # matplotlib: only when plotting

    if fmt not in ("png", "svg", "pdf"):
        raise ConfigError(f"--format must be png, svg or pdf, got '{fmt}'")
    tuned = verdict.load_tune(results_dir)
    if tuned is not None:
        from lossbench.results.plot_tune import plot_tune

        return plot_tune(tuned, results_dir, fmt=fmt)
    runs = report_module.load_runs(results_dir)
    return plot_module.plot_results(runs, report_module.summarize(runs), results_dir,
                                    fmt=fmt, log_loss=log_loss)


def export(results_dir: str | Path, to: str, tracking_uri: str = DEFAULT_TRACKING_URI,
           experiment_name: str = "lossbench", logdir: str | Path = "runs") -> dict:
    """`lossbench export`: every run folder of `results_dir` into MLflow (`to="mlflow"`:
    `tracking_uri`, `experiment_name`) or TensorBoard (`to="tensorboard"`: `logdir`).
    Exporting again replaces changed runs and skips unchanged ones. Returns what was done
    (`export.Exported` as a dict)."""

    if to == "mlflow":
        done = export_module.export_mlflow(results_dir, tracking_uri=tracking_uri,
                                           experiment_name=experiment_name)
    elif to == "tensorboard":
        done = export_module.export_tensorboard(results_dir, logdir=logdir)
    else:
        raise ConfigError(f"--to must be mlflow or tensorboard, got '{to}'")
    return dataclasses.asdict(done)


def migrate(results_dir: str | Path = "results", dry_run: bool = False) -> list[tuple[Path, Path]]:
    """`lossbench migrate`: rename the folders of earlier versions under `results_dir` to
    today's names (lossbench/results/migrate.py); returns the renames."""

    return migrate_folders(results_dir, dry_run=dry_run)
