"""Run folders read from disk: one run (`load_run`), every run below a folder (`load_runs`),
the most recent results folder (`latest_results`) and a sweep's sweep.json (`load_sweep`).
What `report`, `plot` and `export` read; it computes nothing (that is report.py).

    runs = load_runs("results/synthetic-91f440ad")      # a run, an experiment or a sweep folder

Bad input is a DataError, one line that says what the path is and what to give instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lossbench.errors import DataError
from lossbench.results.folders import read_json, read_metrics

RUN_FILES = ("config.json", "metrics.csv", "summary.json")
"""The files of a run folder (folders.py); a folder holding any of them is a run folder."""


@dataclass
class Run:
    """One run folder as read from disk. `summary` is None when the folder is incomplete
    (a file missing or unreadable, or status not complete/diverged); `problem` says why."""

    dir: Path
    config: dict
    rows: list[dict]
    summary: dict | None
    problem: str = ""

    @property
    def diverged(self) -> bool:
        return self.summary is not None and self.summary.get("status") == "diverged"


def load_run(run_dir: Path) -> Run:
    """Read one run folder; whatever fails is recorded in `problem`, not raised."""
    config: dict = {}
    rows: list[dict] = []
    try:
        config = read_json(run_dir / "config.json")
        rows = read_metrics(run_dir / "metrics.csv")
        summary = read_json(run_dir / "summary.json")
    except DataError as exc:
        return Run(run_dir, config, rows, None, str(exc))
    lacking = [k for k in ("strategy", "b", "seed") if k not in config]
    problem = (f"{run_dir / 'config.json'} lacks {', '.join(lacking)}" if lacking else
               f"{run_dir / 'summary.json'} has status {summary.get('status')!r}, not "
               "'complete' or 'diverged'" if summary.get("status") not in
               ("complete", "diverged") else "")
    return Run(run_dir, config, rows, None if problem else summary, problem)


def load_runs(results_dir: str | Path) -> list[Run]:
    """Every run folder at or below `results_dir` (a run, an experiment or a sweep folder),
    sorted by path. A run folder is one holding config.json, metrics.csv or summary.json.
    Incomplete folders are returned with summary None. A DataError, one line for each case:
    `results_dir` does not exist; is a file (its folder is named when it is a run file); is
    a folder but not a results folder (no run folders below it); or holds no complete run
    (naming a bad file)."""
    results_dir = Path(results_dir)
    if not results_dir.exists():
        raise DataError(f"no such results folder: {results_dir}")
    if not results_dir.is_dir():
        hint = (f"give the run folder that holds it: {results_dir.parent}"
                if results_dir.name in RUN_FILES else
                "give a folder that `lossbench run` wrote (under results/)")
        raise DataError(f"{results_dir} is a file, not a results folder; {hint}")
    dirs = sorted({p.parent for name in RUN_FILES for p in results_dir.rglob(name)})
    runs = [load_run(d) for d in dirs]
    if not runs:
        raise DataError(f"no runs found in {results_dir}: not a results folder (a run folder "
                        "holds config.json, metrics.csv and summary.json; make one with "
                        "`lossbench run`)")
    if all(r.summary is None for r in runs):
        raise DataError(f"no complete runs in {results_dir}: {runs[0].problem}")
    return runs


def latest_results(out: str | Path = "results") -> Path:
    """The results folder under `out` (a direct child: an experiment or sweep folder) whose
    run files were written last. DataError when `out` holds none, or is a file; its message
    names no command, since report, plot and export all call this (what to do next: run
    `lossbench run` first, or name the folder)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file, not a folder of results (--out names the folder "
                        "that holds results folders)")
    newest: dict[Path, float] = {}
    if out.is_dir():
        for child in out.iterdir():
            if child.is_dir():
                times = [p.stat().st_mtime for name in RUN_FILES for p in child.rglob(name)]
                if times:
                    newest[child] = max(times)
    if not newest:
        raise DataError(f"no results folder under {out}: run `lossbench run` first, or give "
                        "the results folder as the argument (or its parent as --out)")
    return max(newest, key=lambda p: (newest[p], p.name))


def load_sweep(results_dir: str | Path) -> dict | None:
    """`results_dir/sweep.json` (written by `lossbench sweep-b`), or None when absent."""
    path = Path(results_dir) / "sweep.json"
    return read_json(path) if path.exists() else None
