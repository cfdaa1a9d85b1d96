"""Progress of a command's runs: a display model fed by the runs' `Events`, drawn with rich.

    model = ProgressModel()                    # pure: counts and the ETA, no drawing
    bars = ProgressBars(make_progress())       # Events -> model -> rich bars

`ProgressModel` keeps what a reader needs to trust the display: runs planned, finished and
skipped, the runs training now (each with its epochs so far), and epochs trained in this
command. Runs may interleave (worker processes, Ray tasks, fused groups); a run is known by
its settings (`run_key`), so an outcome that comes back from another process finds its run.

The ETA is measured, not guessed: the epochs still to train (the running runs' remaining
epochs, the planned runs' epochs, and those of the runs a tune has announced but not yet
planned) times the wall time this command has spent per epoch
trained so far, over every run that trained, finished or running. It counts parallel
workers, fused groups and Ray tasks alike, as it divides wall time by the epochs they
trained together. Runs that stop early (patience, divergence) or are complete on disk drop
their remaining epochs when they finish; before the first epoch there is no ETA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from lossbench import strategies as registry
from lossbench.cli.display import console
from lossbench.events import Events


def run_key(cfg: Any) -> str:
    """A run's identity for the display: its settings (equal for a copy from a worker)."""
    return repr(cfg)


def run_label(cfg: Any) -> str:
    """`flood b=8.9 seed=0`, with every strategy parameter that differs from its default
    (`weighted w=0.3 seed=1`), as progress names a run."""
    defaults = registry.run_params(cfg.strategy.name, {})
    changed = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
               for k, v in cfg.strategy.params.items() if defaults.get(k) != v]
    flood = [f"b={cfg.strategy.b:g}"] if cfg.strategy.b else []
    return " ".join([cfg.strategy.name, *flood, *changed, f"seed={cfg.seed}"])


@dataclass
class Running:
    """A run that is training: its label, planned epochs and the last epoch done."""

    label: str
    epochs: int
    done: int = 0
    last: dict = field(default_factory=dict)


@dataclass
class ProgressModel:
    """The state of a command's runs, updated by `Events` (see the module docstring)."""

    planned: dict[str, int] = field(default_factory=dict)
    """Runs planned and not yet started -> their epochs."""
    expected: int = 0
    """Runs announced to come whose settings are not known yet (`Events.runs_expected`)."""
    expected_epochs: int = 0
    """The epochs of each expected run."""
    running: dict[str, Running] = field(default_factory=dict)
    finished: int = 0
    skipped: int = 0
    total: int = 0
    epochs_trained: int = 0
    started_at: float | None = None
    """When the first epoch of this command began training (None before any)."""

    def expect(self, count: int, epochs: int) -> None:
        """`count` more runs of `epochs` epochs will be planned (replacing an earlier count)."""
        self.total += count - self.expected
        self.expected, self.expected_epochs = count, epochs

    def plan(self, cfgs: list[Any]) -> None:
        for cfg in cfgs:
            if run_key(cfg) not in self.planned:
                self.planned[run_key(cfg)] = cfg.train.epochs
                if self.expected:
                    self.expected -= 1  # counted in the total already
                else:
                    self.total += 1

    def start(self, cfg: Any, now: float) -> None:
        key = run_key(cfg)
        if key not in self.planned and key not in self.running:
            self.total += 1  # started without a plan (a caller that plans nothing)
        self.planned.pop(key, None)
        self.running.setdefault(key, Running(run_label(cfg), cfg.train.epochs))
        if self.started_at is None:
            self.started_at = now

    def epoch(self, cfg: Any, row: dict) -> None:
        """One epoch done. A resumed run first replays its last checkpointed epoch: that
        counts as one trained epoch, an overcount of at most one per resumed run."""
        run = self.running.get(run_key(cfg))
        if run is None:
            return
        self.epochs_trained += max(1, row["epoch"] - run.done) if run.done else 1
        run.done, run.last = row["epoch"], row

    def finish(self, cfg: Any, skipped: bool) -> None:
        key = run_key(cfg)
        self.planned.pop(key, None)
        self.running.pop(key, None)
        self.finished += 1
        self.skipped += skipped

    @property
    def epochs_left(self) -> int:
        """Epochs still to train: the running runs' remaining, the planned runs' and the
        expected runs'."""
        return (sum(max(0, r.epochs - r.done) for r in self.running.values())
                + sum(self.planned.values()) + self.expected * self.expected_epochs)

    def eta(self, now: float) -> float | None:
        """Seconds left: epochs_left x (wall time per epoch trained so far); None before
        the first epoch."""
        if not self.epochs_trained or self.started_at is None:
            return None
        return self.epochs_left * (now - self.started_at) / self.epochs_trained


def clock(seconds: float | None) -> str:
    """`1:02:03`, `4:05`, or `-:--` when unknown."""
    if seconds is None:
        return "-:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def make_progress() -> Progress:
    """The bars: a description, a bar, done/total, elapsed time, and the model's ETA."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), console=console,
                    transient=False)


class ProgressBars(Events):
    """`Events` drawn as rich bars: one for the command (runs done, running and skipped;
    its bar counts epochs, the unit of work) and one per running run (its epochs and last
    validation loss), removed when the run finishes."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.model = progress, ProgressModel()
        self.overall: TaskID | None = None
        self.bars: dict[str, TaskID] = {}

    def runs_expected(self, count: int, epochs: int) -> None:
        self.model.expect(count, epochs)
        self.draw()

    def runs_planned(self, cfgs: list[Any]) -> None:
        self.model.plan(cfgs)
        self.draw()

    def run_started(self, cfg: Any) -> None:
        self.model.start(cfg, time.monotonic())
        key = run_key(cfg)
        if key not in self.bars:
            self.bars[key] = self.progress.add_task(run_label(cfg), total=cfg.train.epochs, eta="")
        self.draw()

    def epoch_done(self, cfg: Any, row: dict) -> None:
        self.model.epoch(cfg, row)
        key = run_key(cfg)
        if key in self.bars:
            self.progress.update(self.bars[key], completed=row["epoch"],
                                 description=f"{run_label(cfg)} val_loss={row['val_loss']:.4f}")
        self.draw()

    def run_finished(self, outcome: Any) -> None:
        self.model.finish(outcome.cfg, outcome.skipped)
        bar = self.bars.pop(run_key(outcome.cfg), None)
        if bar is not None:
            self.progress.remove_task(bar)
        if outcome.skipped:
            self.progress.console.print(f"skipped (already complete): {outcome.dir}",
                                        markup=False, highlight=False)
        self.draw()

    def draw(self) -> None:
        """The command's line from the model; the bars start with the first event (so an
        error before any run prints alone)."""
        m = self.model
        epochs_total = max(m.epochs_trained + m.epochs_left, 1)
        text = (f"runs {m.finished}/{m.total} done, {len(m.running)} running"
                + (f", {m.skipped} skipped" if m.skipped else "") + "; epochs")
        eta = f"eta {clock(m.eta(time.monotonic()))}"
        if self.overall is None:
            self.progress.start()
            self.overall = self.progress.add_task(text, total=epochs_total, eta=eta)
        self.progress.update(self.overall, description=text, total=epochs_total,
                             completed=m.epochs_trained, eta=eta)


def stop_progress(progress: Progress) -> None:
    """Stop the bars if they ever started (`Progress.stop` on bars that never started still
    prints a blank line, which would precede a bad-input error)."""
    if progress.live.is_started:
        progress.stop()
