"""One run's model: how it steps, and `train`, one run from fresh weights to test metrics.

    result = train(cfg, task, on_epoch=print)      # RunResult(rows, summary)

Per epoch (`SingleModel.train_epoch`): batches in an order that depends only on (batch seed,
epoch); for each batch `losses = compute_losses(...)`, `step = objective(losses.main,
losses.aux)` (the strategy and its flooding, lossbench/strategies/), one optimiser step on
`step.objective` (or, for a gradient-combining strategy, on the gradient it combines). The
rest (validation, the best epoch, early stopping, divergence, checkpoints, the test split at
the end) is the one training loop's, lossbench/training/loop.py, which fused runs share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lossbench.config import OptimConfig, RunConfig
from lossbench.errors import ConfigError
from lossbench.seeds import epoch_generator, run_seeds, seed_everything
from lossbench.strategies import Objective, build_objective
from lossbench.tasks import Split, Task
from lossbench.training.checkpoint import load_checkpoint, to_numpy
from lossbench.training.loop import Best, EndCallback, EpochCallback, RunState, train_runs
from lossbench.training.losses import compute_losses
from lossbench.training.metrics import evaluate
from lossbench.training.models import build_model


@dataclass
class RunResult:
    """What one run produced: one row per epoch (results/folders.py COLUMNS) and the
    summary."""

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


class SingleModel:
    """The loop's engine for one run (lossbench/training/loop.py): its model (fresh weights
    from the init seed, `init_model`), strategy and optimiser, resumed from the run's
    checkpoint when there is one."""

    def __init__(self, run: RunState, model: torch.nn.Module, task: Task,
                 device: torch.device) -> None:
        self.runs, self.template, self.task, self.device = [run], model, task, device
        self.strategy = run.objective.weighting.to(device)
        self.optimizer = make_optimizer(model, run.cfg.optim, list(self.strategy.parameters()))
        if run.checkpoint is not None and run.checkpoint.exists():
            done, run.rows, best = load_checkpoint(run.checkpoint, model, self.optimizer,
                                                   self.strategy)
            run.first_epoch, run.best = done + 1, Best(**best)

    def train_epoch(self, epoch: int) -> torch.Tensor:
        """One pass over the training split: every step's five numbers (loop.STEP_NUMBERS),
        [steps, 1, 5] on the host. They stay on the device until the epoch ends and are read
        in one go: on a GPU, reading a number every step would make the CPU wait for the GPU
        every step (a diverged epoch therefore runs to its end before it is reported)."""
        (run,) = self.runs
        cfg, model = run.cfg, self.template
        generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
        epoch_steps = steps_per_epoch(self.task, cfg.train.batch_size)
        steps = []
        model.train()
        batches = epoch_batches(self.task, cfg.train.batch_size, generator, self.device)
        for k, (inputs, targets) in enumerate(batches, 1):
            set_lr(self.optimizer, cfg.optim, cfg.train.epochs, epoch, k, epoch_steps)
            losses = compute_losses(model, inputs, targets, cfg.losses, epoch, generator)
            step = train_step(model, self.optimizer, run.objective, losses)
            steps.append(torch.stack([step.total.detach(), step.objective.detach(),
                                      losses.main.mean.detach(), losses.aux.mean.detach(),
                                      step.below.detach()]))
        return torch.stack(steps).cpu()[:, None]

    def evaluate(self, split: Split) -> list[dict]:
        """The validation metrics of the run's model (`metrics.evaluate`), as a list of one."""
        (run,) = self.runs
        return [evaluate(self.template, split, batch_size=run.cfg.train.eval_batch_size,
                         device=self.device, exclude_seen=run.cfg.train.exclude_seen)]

    def states(self) -> list[tuple[dict, dict]]:
        """[(weights, optimiser state)] as host copies (the best epoch keeps its weights)."""
        weights = {k: np.array(v) for k, v in to_numpy(self.template.state_dict()).items()}
        return [(weights, to_numpy(self.optimizer.state_dict()))]

    def keep(self, indices: list[int]) -> None:
        """Keep the runs at `indices` (the run, or none once it has ended)."""
        self.runs = [self.runs[i] for i in indices]


def train_one(cfg: RunConfig, task: Task, checkpoint: Path | None, on_epoch: EpochCallback,
              on_end: EndCallback) -> RunState:
    """Train one run with the one loop and a `SingleModel`; returns its state (rows and
    summary). With `checkpoint`, a checkpoint is written after every epoch and, if the file
    exists, training resumes after its epoch; on the CPU the rows are then identical to an
    uninterrupted run's (except `seconds`)."""
    device = resolve_device(cfg.device)
    model = init_model(task, cfg, device)
    run = RunState(cfg, build_objective(cfg.strategy.name, cfg.strategy.params,
                                        cfg.strategy.b), checkpoint)
    train_runs([run], SingleModel(run, model, task, device), task, device, on_epoch, on_end)
    return run


def train(cfg: RunConfig, task: Task, on_epoch: Callable[[list[dict]], None] | None = None,
          checkpoint: Path | None = None) -> RunResult:
    """`train_one` for a caller of its own (no run folder): its rows and summary, with
    `wall_seconds`; `on_epoch(rows)` after every epoch."""
    run = train_one(cfg, task, checkpoint,
                    on_epoch=lambda _, rows: on_epoch(rows) if on_epoch else None,
                    on_end=lambda *_: None)
    return RunResult(run.rows, {**run.summary, "wall_seconds": run.seconds})
