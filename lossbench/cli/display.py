"""What the `lossbench` commands show: the consoles, the progress bars and the tables.

Only the CLI prints; these functions build rich objects from what the library returns (a
Comparison, sweep.json's content, report's summary) and print them on `console`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lossbench.errors import LossbenchError

# Piped or captured output (CI logs, files) gets room for the tables; a terminal its own width.
console = Console() if sys.stdout.isatty() else Console(width=150)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def runs_table(comparison) -> Table:
    """One line per run: strategy, b, seed, best epoch and the metrics there."""
    table = Table(title=f"lossbench run: {len(comparison.runs)} runs "
                        "(val = validation at the best epoch, test there too)")
    for column in ("strategy", "b", "seed", "status", "best ep", "val loss", "final val",
                   "test loss", "test acc", "test ndcg10", "s"):
        table.add_column(column, justify="left" if column in ("strategy", "status") else "right")
    for run in comparison.runs:
        s = run.summary
        table.add_row(run.cfg.strategy.name, f"{run.cfg.strategy.b:g}", str(run.cfg.seed),
                      s.get("status", "?") + (" (skipped)" if run.skipped else ""),
                      fmt(s.get("best_epoch")), fmt(s.get("val_loss"), 3),
                      fmt(s.get("final_val_loss"), 3), fmt(s.get("test_loss"), 3),
                      fmt(s.get("test_acc"), 3), fmt(s.get("test_ndcg10"), 3),
                      fmt(s.get("wall_seconds"), 1))
    return table


def print_flood_advice(comparison) -> None:
    """report.flood_notes for the runs of this command: a plain line for each flooded group
    whose flooding never acted, or acted from the first step."""
    from lossbench.results import report  # numpy: only once there are results, not for --help

    done = [r for r in (report.load_run(o.dir) for o in comparison.runs) if r.summary]
    for line in report.flood_notes(done, report.varying_settings(done)) if done else []:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_group_tables(results_dir: Path) -> None:
    """The compact table of `report` (per strategy: the selection metric and the paired
    differences of the test metrics); skipped when no run of the folder finished, e.g. all
    diverged: `lossbench report` says why."""
    from lossbench.results import report  # numpy: only once there are results
    from lossbench.results import tables as report_tables

    try:
        summary = report.summarize(report.load_runs(results_dir))
    except LossbenchError:
        return
    console.print(report_tables.render_tables(summary, full=False)[0])


def sweep_table(result: dict) -> Table:
    """One line per value: mean and 95 % CI of the selection metric and its test
    counterpart."""
    select, param = result["select"], result["param"]
    baseline = f", baseline b = 0 is {result['baseline']}" if result.get("baseline") else ""
    table = Table(title=f"sweep of {param} ({result['strategy']}{baseline}): mean [95 % CI] "
                        "over seeds")
    for column in (param, select, f"test_{select[4:]}", "test acc", "test ndcg10", "diverged",
                   "selected"):
        table.add_column(column, justify="right")
    for value, stats in result["per_value"].items():
        val, test = stats["val"], stats["test"]
        table.add_row(value, f"{val['mean']:.4f} [{val['lo']:.4f}, {val['hi']:.4f}]",
                      f"{test['mean']:.4f} [{test['lo']:.4f}, {test['hi']:.4f}]",
                      fmt(stats["test_metrics"]["test_acc"], 3),
                      fmt(stats["test_metrics"]["test_ndcg10"], 3),
                      str(len(stats["diverged"])),
                      "<-" if float(value) == result["selected"] else "")
    return table
