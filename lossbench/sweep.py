"""`lossbench sweep-b`: choose the flood level b on validation, report test at the choice.

    result = sweep_b(base_cfg, strategy="flood", grid=None, seeds=[0, 1, 2], select="val_loss")

1. The no-flood baseline (b = 0: `plain` for `flood`, `reweight` for `reweight-flood`) runs
   for every seed. It competes in the selection like any other b.
2. Without a user grid, the grid is DEFAULT_FRACTIONS x L*, where L* is the baseline's
   training loss (`train_loss`, the raw total) at its best validation epoch, averaged over
   seeds, rounded to 3 significant digits. The grid is printed and stored in sweep.json.
3. Every b of the grid runs for every seed, paired with the baseline (same data, weights and
   batches per seed).
4. Selection uses validation only: each run's early-stopping epoch is the best epoch by the
   selection metric itself (the runs' `best_by` is set to `select`), the metric there is
   averaged over seeds, and the best mean wins (lowest loss, highest accuracy/NDCG); a tie
   goes to the smaller b. The test metrics of the chosen b are reported; the test split
   never enters the choice.

Everything lands in one folder, `<out>/sweep-<task>-<strategy>-<hash>/`: the run folders and
`sweep.json`. Running the same command again skips complete runs and reruns incomplete ones.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from lossbench.config import RunConfig, validate
from lossbench.errors import ConfigError
from lossbench.experiment import (
    Comparison,
    Events,
    RunOutcome,
    experiment_name,
    make_folder,
    remove_empty,
    run_all,
)
from lossbench.recorder import write_json
from lossbench.stats import mean_ci

DEFAULT_FRACTIONS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.1)
"""Default grid as fractions of the baseline's training loss at its best validation epoch:
below 1 floods the late (memorising) phase, around 1 floods from the best epoch on."""
SELECT_METRICS = ("val_loss", "val_acc", "val_ndcg10")
TEST_OF = {"val_loss": "test_loss", "val_acc": "test_acc", "val_ndcg10": "test_ndcg10"}
BASELINE_OF = {"flood": "plain", "reweight-flood": "reweight"}


def parse_grid(grid: str | None, b_range: str | None) -> list[float] | None:
    """`--b-grid 0.05,0.1,0.2` or `--b-range start:stop:num` (inclusive, like
    numpy.linspace) to a sorted list of distinct b >= 0; None when neither is given."""
    if grid and b_range:
        raise ConfigError("give either --b-grid or --b-range, not both")
    if grid:
        try:
            values = [float(x) for x in grid.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--b-grid must be numbers separated by commas, got '{grid}'")\
                from None
    elif b_range:
        parts = b_range.split(":")
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(f"--b-range must be start:stop:num, got '{b_range}'") from None
        if num < 1:
            raise ConfigError(f"--b-range needs num >= 1, got {num}")
        values = np.linspace(start, stop, num).round(12).tolist()
    else:
        return None
    if not values:
        raise ConfigError("the b grid is empty")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ConfigError(f"flood levels must be finite and >= 0, got {bad[0]:g}")
    return sorted(set(values))


def default_grid(baselines: list[RunOutcome]) -> tuple[list[float], float]:
    """DEFAULT_FRACTIONS x L* (see the module docstring); returns (grid, L*)."""
    losses = []
    for run in baselines:
        if run.summary.get("status") != "complete":
            continue
        rows = run.rows
        best = run.summary["best_epoch"]
        losses.append(rows[best - 1]["train_loss"])
    if not losses:
        raise ConfigError("every baseline run diverged: no training loss to derive a grid from;"
                          " give --b-grid")
    level = float(np.mean(losses))
    grid = sorted({float(f"{f * level:.3g}") for f in DEFAULT_FRACTIONS})
    return grid, level


def better(a: float, b: float, select: str) -> bool:
    """Strictly better mean: lower for val_loss, higher otherwise."""
    return a < b if select == "val_loss" else a > b


def select_b(per_b: dict[float, dict], select: str) -> tuple[float, str]:
    """The b with the best mean validation metric (ties: the smaller b), and why."""
    candidates = sorted(b for b, stats in per_b.items() if not math.isnan(stats["val"]["mean"]))
    if not candidates:
        raise ConfigError("no b value has a finished run to select from")
    chosen = candidates[0]
    for b in candidates[1:]:
        if better(per_b[b]["val"]["mean"], per_b[chosen]["val"]["mean"], select):
            chosen = b
    direction = "lowest" if select == "val_loss" else "highest"
    mean = per_b[chosen]["val"]["mean"]
    return chosen, (f"b = {chosen:g} has the {direction} mean {select} over seeds "
                    f"({mean:.4f}) at each run's best epoch by {select}; chosen on "
                    "validation only, ties to the smaller b")


def stats_by_b(runs: list[RunOutcome], select: str) -> dict[float, dict]:
    """Per b: mean and 95 % CI over seeds of the selection metric and its test counterpart,
    plus every test metric, from the runs' summaries (diverged runs are counted apart)."""
    out: dict[float, dict] = {}
    for b in sorted({r.cfg.b for r in runs}):
        group = [r for r in runs if r.cfg.b == b]
        done = [r.summary for r in group if r.summary.get("status") == "complete"]
        entry = {"seeds": [r.cfg.seed for r in group],
                 "diverged": [r.cfg.seed for r in group if r.summary.get("status") == "diverged"]}
        for key, metric in (("val", select), ("test", TEST_OF[select])):
            values = [s[metric] for s in done]
            entry[key] = {"metric": metric, "per_seed": values, **mean_ci(values)}
        entry["test_metrics"] = {m: mean_ci([s[m] for s in done])["mean"] for m in
                                 ("test_loss", "test_acc", "test_hr10", "test_ndcg10")}
        out[b] = entry
    return out


def sweep_b(base: RunConfig, *, strategy: str = "flood", grid: list[float] | None = None,
            seeds: list[int], select: str = "val_loss", out: str | Path = "results",
            events: Events | None = None, on_grid=None, jobs: int | str = 1,
            threads: int | None = None, restart: bool = False) -> dict:
    """Run the sweep (see the module docstring) and return the content of sweep.json."""
    if strategy not in BASELINE_OF:
        raise ConfigError(f"sweep-b floods: --strategy must be flood or reweight-flood, "
                          f"got '{strategy}'")
    if select not in SELECT_METRICS:
        raise ConfigError(f"--select must be one of {', '.join(SELECT_METRICS)}, got '{select}'")
    base = validate(dataclasses.replace(base, best_by=select, b_reweight=-1.0))
    baseline_cfgs = [dataclasses.replace(base, strategy=BASELINE_OF[strategy], b=0.0, seed=s)
                     for s in seeds]
    name = f"sweep-{experiment_name(base).replace('-', f'-{strategy}-', 1)}"
    folder = Comparison(Path(out) / name)
    created = make_folder(folder.dir)
    events = events or Events()
    try:
        planned = None if grid is None else len(seeds) * (1 + len([b for b in grid if b > 0]))
        run_all(baseline_cfgs, folder, events, jobs=jobs, threads=threads, total=planned,
                restart=restart)
        level = None
        if grid is None:
            grid, level = default_grid(folder.runs)
        if on_grid is not None:
            on_grid(grid, level)
        flood_cfgs = [validate(dataclasses.replace(base, strategy=strategy, b=b, seed=s))
                      for b in grid if b > 0 for s in seeds]
        run_all(flood_cfgs, folder, events, offset=len(baseline_cfgs), jobs=jobs,
                threads=threads, restart=restart,
                total=len(baseline_cfgs) + len(flood_cfgs))
    except ConfigError:
        remove_empty(created)
        raise
    per_b = stats_by_b(folder.runs, select)
    chosen, why = select_b(per_b, select)
    result = {"strategy": strategy, "baseline": BASELINE_OF[strategy], "select": select,
              "seeds": seeds, "grid": sorted({0.0, *grid}), "grid_from_baseline_loss": level,
              "selected_b": chosen, "why": why,
              "per_b": {f"{b:g}": stats for b, stats in per_b.items()},
              "runs": {f"{r.cfg.b:g}/s{r.cfg.seed}": r.dir.name for r in folder.runs}}
    write_json(folder.dir / "sweep.json", result)
    result["dir"] = str(folder.dir)
    return result
