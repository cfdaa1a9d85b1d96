"""A paired comparison: several strategies x several seeds, sharing data and initial weights.

    comparison = run_comparison(base_cfg, ["plain", "flood"], seeds=[0, 1, 2], out="results")

The runs come from the one planner (plan.py). For each seed the task is built once and
shared by every strategy; the training loop gives each run the same initial weights (init
seed) and batch order (batch seed), so two runs of a seed differ only in the strategy. Runs
land in `<out>/<experiment>/<run folder>` (results/folders.py); the experiment folder name
is derived from the settings that the runs share, so running the same command again finds
the same folder and skips runs that are already complete. `run_all` sends the runs to
where they run: this process (execute.py), worker processes (workers.py) or Ray tasks
(ray_backend.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from lossbench.config import STRATEGY_KEYS, RunConfig, flat
from lossbench.errors import ConfigError, LossbenchError
from lossbench.events import Events
from lossbench.results.folders import experiment_folder_name
from lossbench.runner.execute import Comparison, RunOutcome, run_group, run_one
from lossbench.runner.plan import plan_runs
from lossbench.runner.ray_backend import run_ray
from lossbench.runner.ray_options import RayOptions
from lossbench.runner.workers import resolve_jobs, run_parallel, thread_share
from lossbench.tasks import data_fingerprint
from lossbench.training.fused import fusable_groups
from lossbench.training.trainer import resolve_device

__all__ = ["Comparison", "Events", "RunOutcome", "experiment_name", "make_folder",
           "remove_empty", "run_all", "run_comparison"]


def experiment_name(base: RunConfig) -> str:
    """`<task, dataset or file stem>-<hash of the shared settings and of the data>`
    (`results.folders.experiment_folder_name`): the same settings and data give the same
    folder, whatever strategies and seeds are run in it; a changed interactions file
    (another SHA-256) lands in a new folder."""
    shared = {k: v for k, v in flat(base).items() if k not in STRATEGY_KEYS}
    return experiment_folder_name(shared, data_fingerprint(base.task))


def make_folder(path: Path) -> list[Path]:
    """Create `path` (and parents) and prove it writable; return the folders created, so
    that a failure can remove them again. An unwritable place is a ConfigError."""
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        remove_empty(created)
        raise ConfigError(f"cannot write results to {path}: {exc.strerror or exc}") from None
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders that are still empty, innermost first."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def run_comparison(base: RunConfig, strategies: list[str], seeds: list[int],
                   out: str | Path = "results", name: str | None = None,
                   events: Events | None = None, jobs: int | str | RayOptions = 1,
                   threads: int | None = None, restart: bool = False,
                   fuse: bool | None = None) -> Comparison:
    """Run every (seed, strategy) pair, skipping runs already complete on disk. Unfinished
    runs continue from their checkpoint, or start afresh with `restart`. `jobs`: local worker
    processes, or a `ray_backend.RayOptions` to run them as Ray tasks (`run_all`). `fuse`:
    train each seed's fusable runs as one stacked model (None: with CUDA only)."""
    events = events or Events()
    runs = plan_runs(base, strategies, seeds)
    if not on_ray(jobs):  # on Ray, devices are the workers' (checked there)
        resolve_device(base.device)
        resolve_jobs(jobs, len(runs), base.device)  # a bad --jobs fails before anything is written
    comparison = Comparison(Path(out) / (name or experiment_name(base)))
    created = make_folder(comparison.dir)
    events.runs_planned(runs)
    try:
        run_all(runs, comparison, events, jobs=jobs, threads=threads, restart=restart,
                fuse=not on_ray(jobs) and resolve_fuse(fuse, base.device))
    except LossbenchError:
        remove_empty(created)
        raise
    return comparison


def on_ray(jobs: int | str | RayOptions) -> bool:
    """Whether `jobs` sends the runs to Ray (a `ray_backend.RayOptions`; Ray itself is
    imported only then)."""
    return isinstance(jobs, RayOptions)


def resolve_fuse(fuse: bool | None, device: str) -> bool:
    """--fuse/--no-fuse; None (the default): on with CUDA, off on the CPU (no gain there)."""
    return resolve_device(device).type == "cuda" if fuse is None else fuse


def run_all(runs: list[RunConfig], comparison: Comparison, events: Events, *,
            jobs: int | str | RayOptions = 1, threads: int | None = None,
            restart: bool = False, fuse: bool = False) -> None:
    """Run (or skip, when complete on disk) each run, appending to `comparison.runs` in plan
    order, with the `Events` of each run (the caller has announced them: `runs_planned`).
    With `jobs` > 1 (after `resolve_jobs`) the runs go to that many worker processes; with a
    `RayOptions` they are Ray tasks (`ray_backend.run_ray`); else they run in this process,
    with `fuse` the runs of each fusable group together (training/fused.py), and a run
    another process holds once the others are done. Each run uses `thread_share(jobs,
    threads)` torch threads."""
    if on_ray(jobs):
        run_ray(runs, comparison, events, threads=thread_share(1, threads), restart=restart,
                options=jobs)
        return
    jobs = resolve_jobs(jobs, len(runs), runs[0].device) if runs else 1
    if jobs > 1 and len(runs) > 1 and not fuse:
        run_parallel(runs, comparison, events, jobs, thread_share(jobs, threads), restart)
        return
    torch.set_num_threads(thread_share(1, threads))
    if fuse:
        groups = fusable_groups(runs)
    else:
        groups = [[cfg] for cfg in runs]
    busy = []
    for group in groups:
        for cfg in group:
            events.run_started(cfg)
        for cfg, outcome in zip(group, run_group(group, comparison.dir, events, wait=False,
                                                 restart=restart), strict=True):
            if outcome is None:  # another process runs it: come back when the rest is done
                busy.append(cfg)
                continue
            comparison.runs.append(outcome)
            events.run_finished(outcome)
    for cfg in busy:
        outcome = run_one(cfg, comparison.dir, events, wait=True, restart=restart)
        comparison.runs.append(outcome)
        events.run_finished(outcome)
    order = {id(cfg): i for i, cfg in enumerate(runs)}
    comparison.runs.sort(key=lambda r: order.get(id(r.cfg), -1))
