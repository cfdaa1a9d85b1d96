"""The training loop: one run = one (task, strategy, seed) from fresh weights to test metrics.

    result = train(cfg, task, on_epoch=print)

Per epoch: batches in an order that depends only on (batch seed, epoch); for each batch
`losses = compute_losses(...)`, `step = objective(losses.main, losses.aux)` (the strategy and
its flooding, lossbench/strategies/), one optimiser step on `step.objective` (or, for a
gradient-combining strategy, on the gradient it combines). Then validation; the best epoch
by `cfg.train.best_by` keeps a copy of the weights, and the test split is evaluated once, with
those weights, at the end. A NaN or infinite loss stops
the run with status `diverged`.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lossbench.config import OptimConfig, RunConfig
from lossbench.errors import ConfigError, DataError
from lossbench.seeds import epoch_generator, run_seeds, seed_everything
from lossbench.strategies import Objective, build_objective
from lossbench.tasks import Task
from lossbench.training.losses import aux_tau, compute_losses
from lossbench.training.metrics import evaluate
from lossbench.training.models import build_model

CHECKPOINT_FORMAT = "lossbench-checkpoint-2"
"""Stored in every checkpoint; a file without it is not resumed from."""

EpochCallback = Callable[[list[dict]], None]
"""Called after every epoch with all rows so far (the new one last)."""


@dataclass
class RunResult:
    """What one run produced: one row per epoch (recorder.COLUMNS) and the summary."""

    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu. Asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig,
                   extra: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
    """SGD with momentum, or Adam; weight decay as L2. `extra`: a strategy's learnable
    parameters (uncertainty's log-variances), a second parameter group with the same
    settings, as LibMTL trains them."""
    groups = [{"params": list(model.parameters())}]
    if extra:
        groups.append({"params": extra})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def epoch_lr(lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """The learning rate of epoch `epoch` (1-based) of `epochs`: `lr` when constant; cosine
    annealing lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2, which is lr at epoch 1 and
    falls to just above 0 at the last epoch."""
    if schedule == "constant":
        return lr
    return lr * (1.0 + math.cos(math.pi * (epoch - 1) / epochs)) / 2.0


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up: min(1, step / warmup_steps) for step k = 1, 2, ... of the run; 1.0
    without warm-up (warmup_steps = 0)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


def set_lr(optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int, epoch: int,
           step: int, epoch_steps: int) -> None:
    """Every parameter group trains step `step` (1-based within the epoch) of epoch `epoch`
    at `epoch_lr` times the warm-up factor of its step in the run, (epoch - 1) *
    epoch_steps + step. Set before every step from (epoch, step) alone, so a resumed or
    re-stacked optimiser continues on the schedule."""
    warmup = warmup_factor((epoch - 1) * epoch_steps + step, cfg.lr_warmup * epoch_steps)
    rate = epoch_lr(cfg.lr, cfg.lr_schedule, epoch, epochs) * warmup
    for group in optimizer.param_groups:
        group["lr"] = rate


def steps_per_epoch(task: Task, batch_size: int) -> int:
    """Optimiser steps in one epoch: ceil(training examples / batch size)."""
    return math.ceil(len(task.train) / batch_size)


def is_better(value: float, best: float, best_by: str) -> bool:
    """Lower is better for val_loss, higher for every other validation metric."""
    return value < best if best_by == "val_loss" else value > best


def init_model(task: Task, cfg: RunConfig, device: torch.device) -> torch.nn.Module:
    """Fresh weights from the init seed: the same for every strategy of a seed."""
    seed_everything(run_seeds(cfg.seed).init)
    return build_model(task.n_items, cfg.task.max_len, cfg.model).to(device)


def train_step(model, optimizer, objective: Objective, losses) -> tuple:
    """One optimiser step; returns the Step (total, objective, below). A loss-level strategy
    is minimised by backpropagating `step.objective`. A gradient-combining one gets the
    gradients of L_main and L_aux (two backward passes), combines them, and under batch
    flooding the combined gradient flips sign when the total is below b (the gradient of
    |L - b| + b)."""
    step = objective(losses.main, losses.aux)
    optimizer.zero_grad(set_to_none=True)
    strategy = objective.weighting
    if not strategy.needs_grads:
        step.objective.backward()
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        extra = [p for p in strategy.parameters() if p.requires_grad]
        g_main = torch.autograd.grad(step.main.mean, params, retain_graph=True,
                                     allow_unused=True)
        g_aux = (torch.autograd.grad(losses.aux.mean, params, retain_graph=bool(extra),
                                     allow_unused=True)
                 if losses.aux.mean.requires_grad else [None] * len(params))
        zeros = [torch.zeros_like(p) for p in params]
        g_main = [g if g is not None else z for g, z in zip(g_main, zeros, strict=True)]
        g_aux = [g if g is not None else z for g, z in zip(g_aux, zeros, strict=True)]
        combined = strategy.combine_grads(g_main, g_aux)
        sign = 1.0 - 2.0 * step.below if objective.flooding == "batch" else 1.0
        for p, g in zip(params, combined, strict=True):
            p.grad = g * sign
        if extra:  # a gradient strategy with learnable parameters of its own
            for p, g in zip(extra, torch.autograd.grad(step.objective, extra), strict=True):
                p.grad = g
    optimizer.step()
    return step


def epoch_batches(task: Task, batch_size: int, generator: torch.Generator,
                  device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training split as (inputs, targets) batches of `batch_size` on `device`, in an
    order drawn from `generator` (the epoch's, `epoch_generator(batch seed, epoch)`), which
    then goes on to draw the epoch's augmentations: the same batches for every strategy."""
    order = torch.randperm(len(task.train), generator=generator)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield (task.train.inputs[idx].to(device, non_blocking=True),
               task.train.targets[idx].to(device, non_blocking=True))


def train_epoch(model, optimizer, objective: Objective, task: Task, cfg: RunConfig,
                epoch: int, device: torch.device) -> dict:
    """One pass over the training split; returns the epoch means of the losses, or
    `{"diverged_step": k}` when step k (1-based) had a non-finite loss.

    Each step's five numbers stay on the device until the epoch ends and are read in one
    go: on a GPU, reading a number every step would make the CPU wait for the GPU every step.
    (A diverged epoch therefore runs to its end before it is reported; it is not recorded.)"""
    generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
    steps = []  # per step: total, objective, L_main, L_aux (detached), fraction below b
    epoch_steps = steps_per_epoch(task, cfg.train.batch_size)
    model.train()
    batches = epoch_batches(task, cfg.train.batch_size, generator, device)
    for k, (inputs, targets) in enumerate(batches, 1):
        set_lr(optimizer, cfg.optim, cfg.train.epochs, epoch, k, epoch_steps)
        losses = compute_losses(model, inputs, targets, cfg.losses, epoch, generator)
        step = train_step(model, optimizer, objective, losses)
        steps.append(torch.stack([step.total.detach(), step.objective.detach(),
                                  losses.main.mean.detach(), losses.aux.mean.detach(),
                                  step.below.detach()]))
    values = torch.stack(steps).cpu()
    finite = torch.isfinite(values).all(dim=1)
    if not bool(finite.all()):
        return {"diverged_step": int((~finite).nonzero()[0, 0]) + 1}
    raw, total, main, aux, below = values.T.tolist()
    n_steps = len(raw)
    return {"train_loss": sum(raw) / n_steps, "train_objective": sum(total) / n_steps,
            "train_main_loss": sum(main) / n_steps, "train_aux_loss": sum(aux) / n_steps,
            "flood_frac": sum(below) / n_steps}


@dataclass
class Best:
    """The best epoch so far by `best_by`: its value, number, weights and validation metrics."""

    value: float
    epoch: int = 0
    state: dict | None = None
    val: dict = field(default_factory=dict)


def to_numpy(obj):
    """Tensors (on any device) -> numpy arrays, through dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v) for v in obj)
    return obj


def to_torch(obj):
    """The inverse of `to_numpy` (tensors on the CPU)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, dict):
        return {k: to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_torch(v) for v in obj)
    return obj


def save_checkpoint(path: Path, epoch: int, model, optimizer, strategy, rows: list[dict],
                    best: Best) -> None:
    """Everything needed to continue after `epoch` as if never stopped, written atomically:
    weights, optimiser, strategy state (its state_dict: θ, learnable weights, history), the
    rows so far, the best epoch and its weights, and the global RNG state (dropout). Batch
    order needs no state: it is a pure function of (batch seed, epoch).

    The file is a pickle with tensors stored as numpy arrays: for these small models that is
    ~3 ms per epoch where `torch.save`, with its per-tensor zip records, took ~8 ms
    (measured on 2 CPU cores; the runner's overhead over a bare loop is in README's
    Performance section). Like `torch.load(weights_only=False)`, loading it trusts the file:
    it is lossbench's own, in the user's own results folder."""
    state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "strategy": strategy.state_dict(),
             "rows": rows, "best": vars(best).copy(), "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(to_numpy(state), handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, optimizer, strategy) -> tuple[int, list[dict], Best]:
    """Restore a checkpoint written by `save_checkpoint`; returns (epoch, rows, best).
    A truncated or foreign file is a DataError naming it."""
    try:
        with open(path, "rb") as handle:
            state = to_torch(pickle.load(handle))
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a lossbench checkpoint (format {state.get('format')!r})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        strategy.load_state_dict(state["strategy"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        return state["epoch"], state["rows"], Best(**state["best"])
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the same error
        raise DataError(f"cannot resume from checkpoint {path}: {exc}; "
                        "delete it to start the run again") from None


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


def end_summary(cfg: RunConfig, status: str, diverged_at: dict | None, best: Best,
                rows: list[dict], flood_level: float | None, model: torch.nn.Module,
                task: Task, device: torch.device) -> dict:
    """summary.json's account of a run that ended (shared by `train` and fused training):
    status, best epoch, flooding, the validation metrics of the best epoch, the test split
    evaluated once with the best epoch's weights (loaded into `model`: the test set is
    never looked at before), and the last epoch's training and validation figures."""
    summary: dict = {"status": status, "diverged_at": diverged_at, "best_by": cfg.train.best_by,
                     "best_epoch": best.epoch, "epochs_run": len(rows),
                     **flooding_summary(flood_level, rows)}
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


def train(cfg: RunConfig, task: Task, on_epoch: EpochCallback | None = None,
          checkpoint: Path | None = None) -> RunResult:
    """Train one run and evaluate it; see the module docstring. With `checkpoint`, a
    checkpoint is written after every epoch and, if the file exists, training resumes
    after its epoch; on the CPU the rows are then identical to an uninterrupted run's
    (except `seconds`)."""
    device = resolve_device(cfg.device)
    model = init_model(task, cfg, device)
    objective = build_objective(cfg.strategy.name, cfg.strategy.params, cfg.strategy.b)
    strategy = objective.weighting.to(device)
    optimizer = make_optimizer(model, cfg.optim, list(strategy.parameters()))
    result = RunResult()
    best = Best(math.inf if cfg.train.best_by == "val_loss" else -math.inf)
    first_epoch = 1
    if checkpoint is not None and checkpoint.exists():
        done, result.rows, best = load_checkpoint(checkpoint, model, optimizer, strategy)
        first_epoch = done + 1
        if on_epoch is not None and result.rows:
            on_epoch(result.rows)
    status, diverged_at = "complete", None
    started = time.perf_counter()
    for epoch in range(first_epoch, cfg.train.epochs + 1):
        if cfg.train.patience and epoch - 1 - best.epoch >= cfg.train.patience:
            break
        epoch_start = time.perf_counter()
        means = train_epoch(model, optimizer, objective, task, cfg, epoch, device)
        if "diverged_step" in means:
            status, diverged_at = "diverged", {"epoch": epoch, "step": means["diverged_step"]}
            break
        val = evaluate(model, task.val, batch_size=cfg.train.eval_batch_size, device=device,
                       exclude_seen=cfg.train.exclude_seen)
        state = strategy.log_state()  # the state this epoch trained with
        strategy.end_epoch({"main": means["train_main_loss"], "aux": means["train_aux_loss"]})
        row = {"epoch": epoch, **means, "theta": objective.theta,
               **{f"val_{k}": v for k, v in val.items()},
               "aux_tau": aux_tau(epoch, cfg.losses),
               "seconds": time.perf_counter() - epoch_start,
               **{k: v for k, v in state.items() if k != "theta"}}
        result.rows.append(row)
        if is_better(row[cfg.train.best_by], best.value, cfg.train.best_by):
            best = Best(row[cfg.train.best_by], epoch, copy.deepcopy(model.state_dict()),
                        {f"val_{k}": v for k, v in val.items()})
        if checkpoint is not None:
            save_checkpoint(checkpoint, epoch, model, optimizer, strategy, result.rows, best)
        if on_epoch is not None:
            on_epoch(result.rows)
    summary = end_summary(cfg, status, diverged_at, best, result.rows, objective.flood_level,
                          model, task, device)
    summary["wall_seconds"] = time.perf_counter() - started
    result.summary = summary
    return result
