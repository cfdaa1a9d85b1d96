"""`lossbench sweep` and `sweep-b`: choose a strategy parameter on validation, report test at
the choice.

    result = sweep(base_cfg, strategy="flood", param="b", grid=None, seeds=[0, 1, 2])
    result = sweep(base_cfg, strategy="weighted", param="w", grid=[0.1, 0.3, 1.0], seeds=...)

For the flood level (`param = "b"`, what `sweep-b` does):

1. The no-flood baseline (b = 0: the strategy's weighting unflooded, `plain` for `flood`,
   `reweight` for `reweight-flood`) runs for every seed. It competes in the selection like
   any other b.
2. Without a user grid, the grid is DEFAULT_FRACTIONS x L*, where L* is the baseline's
   training loss (`train_loss`, the raw total; for example flooding, whose level is one
   example's, L_main's `train_main_loss`) at its best validation epoch, averaged over
   seeds, rounded to 3 significant digits. The grid is printed and stored in sweep.json.
3. Every b of the grid runs for every seed, paired with the baseline (same data, weights and
   batches per seed). The grid's b is the level used, whatever the weighting's own level
   (reweight's b_reweight): lossbench/runner/plan.py plans every run.

For any other registered parameter of the strategy (w, alpha, dwa_temp, ...) every value of
the grid (required) runs for every seed. Then, either way:

4. Selection uses validation only: each run's early-stopping epoch is the best epoch by the
   selection metric itself (the runs' `best_by` is set to `select`), the metric there is
   averaged over seeds, and the best mean wins (lowest loss, highest accuracy/NDCG); a tie
   goes to the smaller value. The test metrics of the chosen value are reported; the test
   split never enters the choice.

Everything lands in one folder, `<out>/sweep-<task>-<strategy>[-<param>]-<hash>/`: the run
folders and `sweep.json`. Running the same command again skips complete runs and reruns
incomplete ones.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lossbench import strategies as registry
from lossbench.config import RunConfig, validate, with_settings
from lossbench.errors import ConfigError
from lossbench.results.folders import safe_name, write_json
from lossbench.results.stats import mean_ci
from lossbench.runner.local import (
    Comparison,
    Events,
    RunOutcome,
    experiment_name,
    make_folder,
    on_ray,
    remove_empty,
    resolve_fuse,
    run_all,
)
from lossbench.runner.plan import plan_sweep

DEFAULT_FRACTIONS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.1)
"""Default b grid as fractions of the baseline's training loss at its best validation epoch:
below 1 floods the late (memorising) phase, around 1 floods from the best epoch on."""
SELECT_METRICS = ("val_loss", "val_acc", "val_ndcg10")
TEST_OF = {"val_loss": "test_loss", "val_acc": "test_acc", "val_ndcg10": "test_ndcg10"}


def parse_grid(grid: str | None, value_range: str | None, names: tuple[str, str] = (
        "--b-grid", "--b-range"), non_negative: bool = True) -> list[float] | None:
    """`--grid 0.05,0.1,0.2` or `--range start:stop:num` (inclusive, like numpy.linspace) to
    a sorted list of distinct finite values (>= 0 for flood levels); None when neither is
    given. `names` are the two options' names, for the messages."""
    grid_name, range_name = names
    if grid and value_range:
        raise ConfigError(f"give either {grid_name} or {range_name}, not both")
    if grid:
        try:
            values = [float(x) for x in grid.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"{grid_name} must be numbers separated by commas, got '{grid}'"
                              ) from None
    elif value_range:
        parts = value_range.split(":")
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(f"{range_name} must be start:stop:num, got '{value_range}'"
                              ) from None
        if num < 1:
            raise ConfigError(f"{range_name} needs num >= 1, got {num}")
        values = np.linspace(start, stop, num).round(12).tolist()
    else:
        return None
    if not values:
        raise ConfigError(f"the {grid_name[2:]} is empty")
    bad = [v for v in values if not math.isfinite(v) or (non_negative and v < 0)]
    if bad:
        what = "flood levels must be finite and >= 0" if non_negative else "values must be finite"
        raise ConfigError(f"{what}, got {bad[0]:g}")
    return sorted(set(values))


def level_column(strategy: str) -> str:
    """The metrics.csv column a flood level is on the scale of: the weighted total
    (`train_loss`) for batch flooding, one L_main example's loss (`train_main_loss`, the
    epoch mean over examples) for example flooding."""
    return "train_main_loss" if registry.split_name(strategy)[1] == "example" else "train_loss"


def baseline_level(baselines: list[RunOutcome], column: str = "train_loss",
                   give: str = "--b-grid") -> float:
    """L*: the mean over the complete baseline runs of `column` at each one's best
    validation epoch. Every baseline diverged: a ConfigError telling to `give` a grid."""
    losses = [run.rows[run.summary["best_epoch"] - 1][column] for run in baselines
              if run.summary.get("status") == "complete"]
    if not losses:
        raise ConfigError("every baseline run diverged: no training loss to derive the flood "
                          f"levels from; give {give}")
    return float(np.mean(losses))


def default_grid(baselines: list[RunOutcome], column: str = "train_loss"
                 ) -> tuple[list[float], float]:
    """DEFAULT_FRACTIONS x L* (see the module docstring); returns (grid, L*)."""
    level = baseline_level(baselines, column)
    grid = sorted({float(f"{f * level:.3g}") for f in DEFAULT_FRACTIONS})
    return grid, level


def better(a: float, b: float, select: str) -> bool:
    """Strictly better mean: lower for val_loss, higher otherwise."""
    return a < b if select == "val_loss" else a > b


def select_value(per_value: dict[float, dict], select: str, param: str = "b"
                 ) -> tuple[float, str]:
    """The value with the best mean validation metric (ties: the smaller value), and why."""
    candidates = sorted(v for v, stats in per_value.items()
                        if not math.isnan(stats["val"]["mean"]))
    if not candidates:
        raise ConfigError(f"no {param} value has a finished run to select from")
    chosen = candidates[0]
    for value in candidates[1:]:
        if better(per_value[value]["val"]["mean"], per_value[chosen]["val"]["mean"], select):
            chosen = value
    direction = "lowest" if select == "val_loss" else "highest"
    mean = per_value[chosen]["val"]["mean"]
    return chosen, (f"{param} = {chosen:g} has the {direction} mean {select} over seeds "
                    f"({mean:.4f}) at each run's best epoch by {select}; chosen on "
                    f"validation only, ties to the smaller {param}")




def value_of(cfg: RunConfig, param: str) -> float:
    """The swept value of a run: its flood level or one of its strategy parameters."""
    return float(cfg.strategy.b if param == "b" else cfg.strategy.params[param])


def stats_by_value(runs: list[RunOutcome], select: str, param: str = "b") -> dict[float, dict]:
    """Per value: mean and 95 % CI over seeds of the selection metric and its test
    counterpart, plus every test metric, from the runs' summaries (diverged runs are counted
    apart)."""
    out: dict[float, dict] = {}
    for value in sorted({value_of(r.cfg, param) for r in runs}):
        group = [r for r in runs if value_of(r.cfg, param) == value]
        done = [r.summary for r in group if r.summary.get("status") == "complete"]
        entry = {"seeds": [r.cfg.seed for r in group],
                 "diverged": [r.cfg.seed for r in group if r.summary.get("status") == "diverged"]}
        for key, metric in (("val", select), ("test", TEST_OF[select])):
            values = [s[metric] for s in done]
            entry[key] = {"metric": metric, "per_seed": values, **mean_ci(values)}
        entry["test_metrics"] = {m: mean_ci([s[m] for s in done])["mean"] for m in
                                 ("test_loss", "test_acc", "test_hr10", "test_ndcg10")}
        out[value] = entry
    return out


def check_sweep(strategy: str, param: str, select: str) -> str:
    """The canonical strategy name after checking that `param` can be swept for it."""
    if select not in SELECT_METRICS:
        raise ConfigError(f"--select must be one of {', '.join(SELECT_METRICS)}, got '{select}'")
    strategy = registry.canonical(strategy)
    weighting, flooding = registry.split_name(strategy)
    if param == "b":
        if flooding == "none":
            raise ConfigError(f"sweep-b floods: --strategy must be a flooded strategy (flood, "
                              f"reweight-flood, X-flood, X-iflood), got '{strategy}'")
        if flooding == "adaflood":
            raise ConfigError(f"'{strategy}' has no flood level b (AdaFlood's levels are per "
                              "example); sweep adaflood_gamma instead: lossbench sweep "
                              f"--strategy {strategy} --param adaflood_gamma")
        return strategy
    own = registry.run_params(strategy, {})
    levels = ["b"] if flooding in ("batch", "example") else []
    if param not in own:
        raise ConfigError(f"strategy '{strategy}' has no parameter '{param}' to sweep; it has: "
                          f"{', '.join(levels + list(own)) or 'none'}")
    return strategy


def sweep(base: RunConfig, *, strategy: str = "flood", param: str = "b",
          grid: list[float] | None = None, seeds: list[int], select: str = "val_loss",
          out: str | Path = "results", events: Events | None = None, on_grid=None,
          jobs: int | str = 1, threads: int | None = None, restart: bool = False,
          fuse: bool | None = None) -> dict:
    """Run the sweep (see the module docstring) and return the content of sweep.json.
    `fuse` as in local.run_comparison (None: with CUDA only)."""
    strategy = check_sweep(strategy, param, select)
    if param != "b" and grid is None:
        raise ConfigError(f"sweeping '{param}' needs values: give --grid or --range")
    base = validate(with_settings(base, {"best_by": select}))
    label = experiment_name(base)
    suffix = safe_name(strategy) if param == "b" else f"{safe_name(strategy)}-{param}"
    folder = Comparison(Path(out) / f"sweep-{label.replace('-', f'-{suffix}-', 1)}")
    created = make_folder(folder.dir)
    events = events or Events()
    baseline = registry.no_flood_baseline(strategy) if param == "b" else None
    fuse = not on_ray(jobs) and resolve_fuse(fuse, base.device)
    try:
        first, rest = plan_sweep(base, strategy, param, grid or [], seeds)
        events.runs_planned(first + rest)
        level = None
        if first:
            run_all(first, folder, events, jobs=jobs, threads=threads, restart=restart,
                    fuse=fuse)
            if grid is None:  # the grid follows from the baseline: its runs are planned now
                grid, level = default_grid(folder.runs, level_column(strategy))
                rest = plan_sweep(base, strategy, param, grid, seeds)[1]
                events.runs_planned(rest)
        assert grid is not None
        if on_grid is not None:
            on_grid(grid, level)
        run_all(rest, folder, events, jobs=jobs, threads=threads, restart=restart, fuse=fuse)
    except ConfigError:
        remove_empty(created)
        raise
    per_value = stats_by_value(folder.runs, select, param)
    chosen, why = select_value(per_value, select, param)
    values = sorted({0.0, *grid}) if param == "b" else sorted(grid)
    result = {"strategy": strategy, "param": param, "baseline": baseline, "select": select,
              "seeds": seeds, "grid": values, "grid_from_baseline_loss": level,
              "selected": chosen, "why": why,
              "per_value": {f"{v:g}": stats for v, stats in per_value.items()},
              "runs": {f"{value_of(r.cfg, param):g}/s{r.cfg.seed}": r.dir.name
                       for r in folder.runs}}
    if param == "b":  # the names sweep.json has always used for flood levels
        result.update(selected_b=chosen, per_b=result["per_value"])
    write_json(folder.dir / "sweep.json", result)
    result["dir"] = str(folder.dir)
    return result


def sweep_b(base: RunConfig, **kwargs) -> dict:
    """`sweep(base, param="b", ...)`: the flood-level sweep."""
    return sweep(base, param="b", **kwargs)
