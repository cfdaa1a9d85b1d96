"""The one training loop: runs from their first epoch to their summary, one model or a fused
stack alike.

    train_runs(states, engine, task, device, on_epoch, on_end)

A run's `RunState` holds what the loop keeps for it (settings, objective, rows, best epoch,
checkpoint). An *engine* holds the runs' weights and steps them: `trainer.SingleModel` one
run's model, `fused.Stacked` the runs of a fused group as one stacked model. Per epoch the
loop asks the engine for one pass over the training split (`train_epoch`: every step's five
numbers per run), then for the validation metrics (`evaluate`), and does the rest itself,
for every engine the same way:

1. a run whose `patience` is spent stops (status complete); a run with a non-finite number
   in its epoch stops (status diverged, at its first such step); the engine drops them;
2. the epoch means (`epoch_means`) and the metrics.csv row (`epoch_row`);
3. the best epoch by `best_by` keeps a host copy of its weights; the checkpoint is written;
4. `on_epoch(state, rows)`, and once a run has ended `on_end(state, summary)`: the test
   split evaluated once, with the best epoch's weights (`end_summary`).

Ctrl-C and SIGTERM pass through: the caller (lossbench/runner/execute.py) marks the runs that
have not ended `interrupted`. The loop writes no files but checkpoints: run folders are the
runner's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lossbench.config import RunConfig, TrainConfig
from lossbench.strategies.objective import Objective
from lossbench.tasks import Task
from lossbench.training.checkpoint import save_checkpoint
from lossbench.training.losses import aux_tau
from lossbench.training.metrics import evaluate


@dataclass
class Best:
    """The best epoch so far by `best_by`: its value, number, weights and validation metrics."""

    value: float
    epoch: int = 0
    state: dict | None = None
    val: dict = field(default_factory=dict)


@dataclass
class RunState:
    """One run in the loop: its settings, objective (strategy and flooding), checkpoint file
    (None: none written), rows so far, best epoch, the epoch it starts at (after a resumed
    checkpoint's), its share of the training time, facts its summary adds (`notes`:
    AdaFlood's auxiliary models) and, once it has ended, its summary."""

    cfg: RunConfig
    objective: Objective
    checkpoint: Path | None = None
    rows: list[dict] = field(default_factory=list)
    best: Best | None = None
    first_epoch: int = 1
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)
    summary: dict | None = None

    def __post_init__(self) -> None:
        if self.best is None:  # nothing yet: any first epoch is better
            self.best = Best(math.inf if self.cfg.train.best_by == "val_loss" else -math.inf)


EpochCallback = Callable[[RunState, list[dict]], None]
"""Called after every epoch of a run with all its rows so far (the new one last)."""
EndCallback = Callable[[RunState, dict], None]
"""Called once a run has ended, with its summary (summary.json without its head)."""
STEP_NUMBERS = ("total", "objective", "main", "aux", "below")
"""The five numbers of a training step that `train_epoch` returns per run."""


def is_better(value: float, best: float, best_by: str) -> bool:
    """Lower is better for val_loss, higher for every other validation metric."""
    return value < best if best_by == "val_loss" else value > best


def patience_spent(best: Best, epoch: int, cfg: TrainConfig) -> bool:
    """Early stopping: `patience` epochs have passed since the best epoch (0 = never)."""
    return bool(cfg.patience) and epoch - 1 - best.epoch >= cfg.patience


def epoch_means(values: torch.Tensor) -> dict:
    """One run's epoch from its steps' numbers `values` [steps, 5] (STEP_NUMBERS): the epoch
    means of the losses, or `{"diverged_step": k}` when step k (1-based) had a non-finite
    number.

        train_loss       mean of the weighted totals before batch flooding
        train_objective  mean of what was minimised
        train_main_loss, train_aux_loss   means of the raw L_main and L_aux
        flood_frac       mean of the fraction flooded (batch: 1 when the total was below b)"""
    finite = torch.isfinite(values).all(dim=1)
    if not bool(finite.all()):
        return {"diverged_step": int((~finite).nonzero()[0, 0]) + 1}
    total, objective, main, aux, below = values.T.tolist()
    n = len(total)
    return {"train_loss": sum(total) / n, "train_objective": sum(objective) / n,
            "train_main_loss": sum(main) / n, "train_aux_loss": sum(aux) / n,
            "flood_frac": sum(below) / n}


def epoch_row(epoch: int, means: dict, objective: Objective, val: dict, cfg: RunConfig,
              seconds: float) -> dict:
    """metrics.csv's row of an epoch (results/folders.py COLUMNS, then the strategy's logged
    state). The strategy's state is the state this epoch trained with; `end_epoch` then
    gives it the epoch means (DWA sets its next weights)."""
    strategy = objective.weighting
    state = strategy.log_state()
    strategy.end_epoch({"main": means["train_main_loss"], "aux": means["train_aux_loss"]})
    return {"epoch": epoch, **means, "theta": objective.theta,
            **{f"val_{k}": v for k, v in val.items()}, "aux_tau": aux_tau(epoch, cfg.losses),
            "seconds": seconds, **{k: v for k, v in state.items() if k != "theta"}}


def flooding_summary(b: float | None, rows: list[dict]) -> dict:
    """summary.json's account of flooding: `flood_acted` (some step's total was below b),
    `flood_from_start` (every step of the first epoch was below b: gradient ascent from the
    start) and the lowest epoch-mean training loss. Both flags are None when the run does
    not flood (no flood level, or b = 0, where |L - 0| + 0 = L)."""
    if not b or not rows:
        return {"flood_acted": None, "flood_from_start": None}
    return {"flood_acted": any(row["flood_frac"] > 0 for row in rows),
            "flood_from_start": rows[0]["flood_frac"] == 1.0,
            "lowest_train_loss": min(row["train_loss"] for row in rows)}


def end_summary(run: RunState, status: str, diverged_at: dict | None, model: torch.nn.Module,
                task: Task, device: torch.device) -> dict:
    """summary.json's account of a run that ended: status, best epoch, flooding (and the
    run's `notes`), the validation metrics of the best epoch, the test split evaluated once
    with the best epoch's weights (loaded into `model`: the test set is never looked at
    before), and the last epoch's training and validation figures."""
    cfg, best, rows = run.cfg, run.best, run.rows
    summary: dict = {"status": status, "diverged_at": diverged_at, "best_by": cfg.train.best_by,
                     "best_epoch": best.epoch, "epochs_run": len(rows),
                     **flooding_summary(run.objective.flood_level, rows), **run.notes}
    if best.state is not None:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in best.state.items()})
        test = evaluate(model, task.test, batch_size=cfg.train.eval_batch_size, device=device,
                        exclude_seen=cfg.train.exclude_seen)
        summary.update(best.val)
        summary.update({f"test_{k}": v for k, v in test.items()})
    if rows:
        summary.update({f"final_{k}": rows[-1][k] for k in
                        ("train_loss", "val_loss", "val_acc", "val_hr10", "val_ndcg10")})
    return summary


def train_runs(runs: list[RunState], engine: Any, task: Task, device: torch.device,
               on_epoch: EpochCallback, on_end: EndCallback) -> None:
    """Train `runs` (all at the same first epoch, sharing every setting but the strategy's)
    with `engine` until each has ended: the loop of the module docstring. `engine` holds the
    runs' weights, in the order of `runs`, and keeps that order as runs are dropped."""
    cfg = runs[0].cfg
    for run in runs:
        if run.rows:  # resumed: the rows of its checkpoint
            on_epoch(run, run.rows)
    active = list(runs)

    def end(ended: list[RunState], status: str, diverged_at: list[dict | None]) -> None:
        nonlocal active
        for run, where in zip(ended, diverged_at, strict=True):
            started = time.perf_counter()
            run.summary = end_summary(run, status, where, engine.template, task, device)
            run.seconds += time.perf_counter() - started
            on_end(run, run.summary)
        if ended:
            gone = {id(r) for r in ended}
            active = [r for r in active if id(r) not in gone]
            engine.keep([i for i, r in enumerate(engine.runs) if id(r) not in gone])

    for epoch in range(runs[0].first_epoch, cfg.train.epochs + 1):
        stopped = [r for r in active if patience_spent(r.best, epoch, cfg.train)]
        end(stopped, "complete", [None] * len(stopped))
        if not active:
            return
        started = time.perf_counter()
        values = engine.train_epoch(epoch)  # [steps, runs, 5], on the host
        means = [epoch_means(values[:, i]) for i in range(len(active))]
        diverged = [(r, m) for r, m in zip(active, means, strict=True) if "diverged_step" in m]
        for run, _ in diverged:
            run.seconds += (time.perf_counter() - started) / len(active)
        end([r for r, _ in diverged], "diverged",
            [{"epoch": epoch, "step": m["diverged_step"]} for _, m in diverged])
        if not active:
            return
        means = [m for m in means if "diverged_step" not in m]
        vals = engine.evaluate(task.val)
        seconds = (time.perf_counter() - started) / len(means)  # the epoch's time per run
        states: list | None = None  # host copies of the weights, made once when needed
        for i, (run, m, val) in enumerate(zip(active, means, vals, strict=True)):
            row = epoch_row(epoch, m, run.objective, val, cfg, seconds)
            run.rows.append(row)
            run.seconds += seconds
            improved = is_better(row[cfg.train.best_by], run.best.value, cfg.train.best_by)
            if (improved or run.checkpoint is not None) and states is None:
                states = engine.states()
            if improved:
                run.best = Best(row[cfg.train.best_by], epoch, states[i][0],
                                {f"val_{k}": v for k, v in val.items()})
            if run.checkpoint is not None:
                save_checkpoint(run.checkpoint, epoch, *states[i], run.objective.weighting,
                                run.rows, run.best)
            on_epoch(run, run.rows)
    end(list(active), "complete", [None] * len(active))
