"""A paired comparison: several strategies x several seeds, sharing data and initial weights.

    comparison = run_comparison(base_cfg, ["plain", "flood"], seeds=[0, 1, 2], out="results")

For each seed the task is built once and shared by every strategy; `trainer.train` gives each
run the same initial weights (init seed) and batch order (batch seed), so two runs of a seed
differ only in the strategy. Runs land in `<out>/<experiment>/<run folder>` (recorder.py);
the experiment folder name is derived from the settings that the runs share, so running the
same command again finds the same folder and skips runs that are already complete.
"""

from __future__ import annotations

import dataclasses
import fcntl
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

import lossbench
from lossbench.config import STRATEGY_KEYS, RunConfig, flat
from lossbench.errors import ConfigError, LossbenchError
from lossbench.events import Events
from lossbench.results.folders import (
    RunRecorder,
    experiment_folder_name,
    interrupted_summary,
    is_complete,
    read_json,
    read_metrics,
    run_dir_name,
    summary_head,
)
from lossbench.runner.plan import plan_runs
from lossbench.runner.workers import resolve_jobs, run_parallel, thread_share
from lossbench.seeds import run_seeds
from lossbench.tasks import Task, build_task, data_fingerprint, task_key
from lossbench.training.trainer import resolve_device, train

if TYPE_CHECKING:
    from lossbench.runner.ray_backend import RayOptions



@dataclass
class RunOutcome:
    """One run of a comparison: its settings, folder, summary and whether it was skipped."""

    cfg: RunConfig
    dir: Path
    summary: dict
    rows: list[dict] = field(default_factory=list)
    skipped: bool = False


@dataclass
class Comparison:
    """Where a comparison was written and what each run gave."""

    dir: Path
    runs: list[RunOutcome] = field(default_factory=list)


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


def run_record(cfg: RunConfig, task: Task) -> dict:
    """config.json: every setting, the derived seeds, versions and the device actually used."""
    device = resolve_device(cfg.device)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    return {**flat(cfg),
            "seeds": dataclasses.asdict(run_seeds(cfg.seed)),
            "device_used": f"{device.type} ({device_name})",
            "task_info": task.info,
            "data_fingerprint": data_fingerprint(cfg.task),
            "versions": {"lossbench": lossbench.__version__, "torch": torch.__version__,
                         "python": sys.version.split()[0]},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


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


TASK_CACHE: dict[tuple, Task] = {}
"""This process's most recent task: the runs of a seed share it (runs are seed-major)."""


def cached_task(cfg: RunConfig) -> Task:
    """The task of `cfg`, built once per process for consecutive runs with the same data."""
    key = task_key(cfg.task, cfg.seed)
    if key not in TASK_CACHE:
        TASK_CACHE.clear()
        TASK_CACHE[key] = build_task(cfg.task, cfg.seed)
    return TASK_CACHE[key]


@contextmanager
def run_lock(run_dir: Path, wait: bool) -> Iterator[bool]:
    """An exclusive lock on `run_dir/.lock` (fcntl.flock, released when the process dies).
    Yields False when another process holds it and `wait` is False."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_one(cfg: RunConfig, parent: Path, events: Events, wait: bool,
            restart: bool = False) -> RunOutcome | None:
    """Run `cfg` in its folder under `parent`, or read it back when it is already complete.
    An unfinished run continues from its checkpoint, or starts afresh with `restart`.
    None when another lossbench process is working on it and `wait` is False."""
    task = cached_task(cfg)
    record = run_record(cfg, task)
    run_dir = parent / run_dir_name(flat(cfg))
    with run_lock(run_dir, wait) as locked:
        if not locked:
            return None
        if is_complete(run_dir, record):
            return RunOutcome(cfg, run_dir, read_json(run_dir / "summary.json"),
                              read_metrics(run_dir / "metrics.csv"), skipped=True)
        if restart:
            (run_dir / "checkpoint.pkl").unlink(missing_ok=True)
        return RunOutcome(cfg, run_dir, *execute_run(cfg, task, run_dir, record, events))


def on_ray(jobs: int | str | RayOptions) -> bool:
    """Whether `jobs` sends the runs to Ray (a `ray_backend.RayOptions`; Ray itself is
    imported only then)."""
    from lossbench.runner.ray_backend import RayOptions

    return isinstance(jobs, RayOptions)


def resolve_fuse(fuse: bool | None, device: str) -> bool:
    """--fuse/--no-fuse; None (the default): on with CUDA, off on the CPU (no gain there)."""
    return resolve_device(device).type == "cuda" if fuse is None else fuse


def run_group(cfgs: list[RunConfig], parent: Path, events: Events,
              restart: bool = False) -> list[RunOutcome]:
    """run_one for a fusable group (fused.fusable_groups): complete runs are read back, the
    others are locked and trained together by fused.run_fused (a single one by execute_run);
    runs another process holds are waited for afterwards, as run_all does."""
    from lossbench.training.fused import run_fused

    task, outcomes, todo = cached_task(cfgs[0]), {}, []
    with ExitStack() as locks:
        for i, cfg in enumerate(cfgs):
            record = run_record(cfg, task)
            run_dir = parent / run_dir_name(flat(cfg))
            if not locks.enter_context(run_lock(run_dir, wait=False)):
                continue
            if is_complete(run_dir, record):
                outcomes[i] = RunOutcome(cfg, run_dir, read_json(run_dir / "summary.json"),
                                         read_metrics(run_dir / "metrics.csv"), skipped=True)
                continue
            if restart:
                (run_dir / "checkpoint.pkl").unlink(missing_ok=True)
            todo.append((i, cfg, run_dir, record))
        if len(todo) > 1:
            results = run_fused([t[1] for t in todo], task, [t[2] for t in todo],
                                [t[3] for t in todo], events)
            for (i, cfg, run_dir, _), result in zip(todo, results, strict=True):
                outcomes[i] = RunOutcome(cfg, run_dir, *result)
        elif todo:
            i, cfg, run_dir, record = todo[0]
            outcomes[i] = RunOutcome(cfg, run_dir,
                                     *execute_run(cfg, task, run_dir, record, events))
    for i, cfg in enumerate(cfgs):
        if i not in outcomes:
            outcomes[i] = run_one(cfg, parent, events, wait=True, restart=restart)
    return [outcomes[i] for i in range(len(cfgs))]


def run_all(runs: list[RunConfig], comparison: Comparison, events: Events, *,
            jobs: int | str | RayOptions = 1, threads: int | None = None,
            restart: bool = False, fuse: bool = False) -> None:
    """Run (or skip, when complete on disk) each run, appending to `comparison.runs` in plan
    order, with the `Events` of each run (the caller has announced them: `runs_planned`).
    With `jobs` > 1 (after `resolve_jobs`) the runs go to that many worker processes; with a
    `RayOptions` they are Ray tasks (`ray_backend.run_ray`); with `fuse` the runs of each
    fusable group train together in this process (`run_group`, training/fused.py). Each
    run uses `thread_share(jobs, threads)` torch threads."""
    if on_ray(jobs):
        from lossbench.runner.ray_backend import run_ray

        run_ray(runs, comparison, events, threads=thread_share(1, threads), restart=restart,
                options=jobs)
        return
    if fuse:
        from lossbench.training.fused import fusable_groups

        torch.set_num_threads(thread_share(1, threads))
        for group in fusable_groups(runs):
            for cfg in group:
                events.run_started(cfg)
            for outcome in run_group(group, comparison.dir, events, restart):
                comparison.runs.append(outcome)
                events.run_finished(outcome)
        return
    jobs = resolve_jobs(jobs, len(runs), runs[0].device) if runs else 1
    if jobs > 1 and len(runs) > 1:
        run_parallel(runs, comparison, events, jobs, thread_share(jobs, threads), restart)
        return
    torch.set_num_threads(thread_share(1, threads))
    busy = []
    for cfg in runs:
        events.run_started(cfg)
        outcome = run_one(cfg, comparison.dir, events, wait=False, restart=restart)
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


def execute_run(cfg: RunConfig, task: Task, run_dir: Path, record: dict,
                events: Events) -> tuple[dict, list[dict]]:
    """Train one run, writing config.json first, metrics.csv and checkpoint.pkl every epoch,
    summary.json last. A checkpoint left by a killed or interrupted run is resumed. Ctrl-C
    or SIGTERM marks the run `interrupted` in summary.json (and re-raises)."""
    recorder = RunRecorder(run_dir)
    checkpoint = run_dir / "checkpoint.pkl"
    recorder.start(record, resume=checkpoint.exists())
    rows: list[dict] = []

    def on_epoch(all_rows: list[dict]) -> None:
        rows[:] = all_rows
        recorder.epoch(all_rows)
        events.epoch_done(cfg, all_rows[-1])

    try:
        result = train(cfg, task, on_epoch=on_epoch, checkpoint=checkpoint)
    except KeyboardInterrupt:
        recorder.finish(interrupted_summary(flat(cfg), len(rows)))
        raise
    summary = {**summary_head(flat(cfg)), **result.summary}
    recorder.finish(summary)
    checkpoint.unlink(missing_ok=True)
    return summary, result.rows
