"""One run, or a fused group of runs, in its folders: the one path every backend takes.

    outcomes = run_group(cfgs, parent, events)    # [RunOutcome | None, ...]
    outcome = run_one(cfg, parent, events)        # the one-run case of run_group

Each run has its folder under `parent` (`results.folders.run_dir_name`), locked while this
process works on it. A complete run is read back (skipped); the others are trained by the
one training loop (lossbench/training/loop.py): a single run as it is, two or more runs of
a fusable group as one stacked model (training/fused.py). The folder is written as the
run-folder contract says (results/folders.py): config.json first, metrics.csv every
epoch, summary.json when the run ends; a checkpoint left by a killed or interrupted run is
resumed. Ctrl-C or SIGTERM marks every run that has not ended `interrupted` (and
re-raises). Local workers (workers.py) and Ray tasks (ray_backend.py) call `run_one`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

import lossbench
from lossbench.config import RunConfig, flat
from lossbench.events import Events
from lossbench.results.folders import (
    RunRecorder,
    interrupted_summary,
    is_complete,
    read_json,
    read_metrics,
    run_dir_name,
    summary_head,
)
from lossbench.seeds import run_seeds
from lossbench.tasks import Task, build_task, data_fingerprint, task_key
from lossbench.training.loop import RunState
from lossbench.training.trainer import resolve_device, train_one


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


def run_record(cfg: RunConfig, task: Task) -> dict:
    """config.json: every setting (flat keys), the derived seeds, the task's facts, the
    data's fingerprint, versions and the device actually used."""
    device = resolve_device(cfg.device)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    return {**flat(cfg),
            "seeds": dataclasses.asdict(run_seeds(cfg.seed)),
            "device_used": f"{device.type} ({device_name})",
            "task_info": {"n_items": task.n_items, **task.info},
            "data_fingerprint": data_fingerprint(cfg.task),
            "versions": {"lossbench": lossbench.__version__, "torch": torch.__version__,
                         "python": sys.version.split()[0]},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


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


def run_one(cfg: RunConfig, parent: Path, events: Events, wait: bool = True,
            restart: bool = False) -> RunOutcome | None:
    """`run_group` of the one run `cfg`: its outcome, or None when another lossbench
    process is working on it and `wait` is False."""
    return run_group([cfg], parent, events, wait=wait, restart=restart)[0]


def run_group(cfgs: list[RunConfig], parent: Path, events: Events, wait: bool = True,
              restart: bool = False) -> list[RunOutcome | None]:
    """Run the runs `cfgs` (one run, or a fusable group: training/fused.py) in their folders
    under `parent`, or read back those complete on disk. Unfinished runs continue from their
    checkpoint, or start afresh with `restart`. A run another process holds is waited for
    once the others are done (`wait`), or left as None."""
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
        if todo:
            trained = train_in_folders([t[1:] for t in todo], task, events)
            outcomes.update({t[0]: outcome for t, outcome in zip(todo, trained, strict=True)})
    for i, cfg in enumerate(cfgs):
        if i not in outcomes:
            outcomes[i] = run_one(cfg, parent, events, wait=True, restart=restart) if wait \
                else None
    return [outcomes[i] for i in range(len(cfgs))]


def train_in_folders(todo: list[tuple[RunConfig, Path, dict]], task: Task, events: Events,
                     allow_dropout: bool = False) -> list[RunOutcome]:
    """Train the runs of `todo` ((cfg, folder, config.json) each), fused when there are two
    or more (`allow_dropout`: see training/fused.py), writing their folders as the module
    docstring says."""
    from lossbench.training.fused import train_fused  # vmap: only where runs fuse

    folders = {id(cfg): (run_dir, RunRecorder(run_dir)) for cfg, run_dir, _ in todo}
    for cfg, run_dir, record in todo:
        folders[id(cfg)][1].start(record, resume=(run_dir / "checkpoint.pkl").exists())
    epochs: dict[int, int] = {id(cfg): 0 for cfg, _, _ in todo}
    summaries: dict[int, dict] = {}
    size = len(todo)

    def on_epoch(run: RunState, rows: list[dict]) -> None:
        epochs[id(run.cfg)] = len(rows)
        folders[id(run.cfg)][1].epoch(rows)
        events.epoch_done(run.cfg, rows[-1])

    def on_end(run: RunState, summary: dict) -> None:
        run_dir, recorder = folders[id(run.cfg)]
        full = {**summary_head(flat(run.cfg)), **summary, "wall_seconds": run.seconds,
                **({"fused": size} if size > 1 else {})}
        recorder.finish(full)
        (run_dir / "checkpoint.pkl").unlink(missing_ok=True)
        summaries[id(run.cfg)] = full

    cfgs = [cfg for cfg, _, _ in todo]
    checkpoints = [run_dir / "checkpoint.pkl" for _, run_dir, _ in todo]
    try:
        if size > 1:
            states = train_fused(cfgs, task, checkpoints, on_epoch, on_end, allow_dropout)
        else:
            states = [train_one(cfgs[0], task, checkpoints[0], on_epoch, on_end)]
    except KeyboardInterrupt:
        for cfg in cfgs:
            if id(cfg) not in summaries:
                folders[id(cfg)][1].finish(interrupted_summary(flat(cfg), epochs[id(cfg)]))
        raise
    return [RunOutcome(cfg, run_dir, summaries[id(cfg)], state.rows)
            for (cfg, run_dir, _), state in zip(todo, states, strict=True)]
