"""One run's model: how it steps, and `train`, one run from fresh weights to test metrics.

    result = train(cfg, task, on_epoch=print)      # RunResult(rows, summary)

Per epoch (`SingleModel.train_epoch`): batches in an order that depends only on (batch seed,
epoch); for each batch `losses = compute_losses(...)`, `step = objective(losses.main,
losses.aux)` (the strategy and its flooding, lossbench/strategies/), one optimiser step on
`step.objective` (or, for a gradient-combining strategy, on the gradient it combines). The
strategy's hooks (lossbench/strategies/base.py): `begin_epoch` before the epoch's batches,
`after_step` with the batch's losses computed again after the step (`losses_again`), the
last shared layer given once (`set_shared_layer`). AdaFlood (`X-adaflood`) also gets each
batch's held-out losses, looked up by the batch's rows in a table that its auxiliary models
make before the run (lossbench/training/adaflood.py). The
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
from lossbench.strategies import Objective, build_objective, split_name
from lossbench.tasks import Split, Task
from lossbench.training.adaflood import heldout_losses
from lossbench.training.checkpoint import load_checkpoint, to_numpy
from lossbench.training.loop import Best, EndCallback, EpochCallback, RunState, train_runs
from lossbench.training.losses import compute_losses
from lossbench.training.metrics import evaluate
from lossbench.training.models import build_model, last_shared_layer


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


def train_step(model, optimizer, objective: Objective, losses, shared_only: bool = False,
               heldout: torch.Tensor | None = None) -> tuple:
    """One optimiser step; returns the Step (total, objective, below, main, aux). A
    loss-level strategy is minimised by backpropagating `step.objective`. A
    gradient-combining one gets the gradients of L_main and L_aux as the weighting saw them
    (after the flooding that acts before it: per example, or of L_main or L_aux alone under
    `flood_target` main or aux) in two backward passes, combines them, and under batch
    flooding of the total the combined gradient flips sign when the total is below b (the
    gradient of |L - b| + b). `heldout`: the batch's held-out losses (AdaFlood).

    Which parameters are combined: by default all of them, a loss that does not reach a
    parameter (its autograd gradient is None) giving it zeros. With `shared_only` (the
    setting of that name) only those both losses reach; one only L_main reaches takes
    L_main's gradient alone, one only L_aux reaches L_aux's, one neither reaches zeros
    (`shared_only_combine`)."""
    step = objective(losses.main, losses.aux, heldout)
    optimizer.zero_grad(set_to_none=True)
    strategy = objective.weighting
    if not strategy.needs_grads:
        step.objective.backward()
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        extra = [p for p in strategy.parameters() if p.requires_grad]
        g_main = torch.autograd.grad(step.main.mean, params, retain_graph=True,
                                     allow_unused=True)
        g_aux = (torch.autograd.grad(step.aux.mean, params, retain_graph=bool(extra),
                                     allow_unused=True)
                 if step.aux.mean.requires_grad else [None] * len(params))
        if shared_only:
            combined = shared_only_combine(strategy, params, list(g_main), list(g_aux))
        else:
            zeros = [torch.zeros_like(p) for p in params]
            g_main = [g if g is not None else z for g, z in zip(g_main, zeros, strict=True)]
            g_aux = [g if g is not None else z for g, z in zip(g_aux, zeros, strict=True)]
            combined = strategy.combine_grads(g_main, g_aux)
        floods_total = objective.flooding == "batch" and objective.target == "total"
        sign = 1.0 - 2.0 * step.below if floods_total else 1.0
        for p, g in zip(params, combined, strict=True):
            p.grad = g * sign
        if extra:  # a gradient strategy with learnable parameters of its own
            for p, g in zip(extra, torch.autograd.grad(step.objective, extra), strict=True):
                p.grad = g
    optimizer.step()
    return step


def shared_only_combine(strategy, params: list, g_main: list, g_aux: list) -> list:
    """The `shared_only` rule: `strategy.combine_grads` over the parameters both losses
    reach (gradient not None), in their order; L_main's gradient alone where only it
    reaches, L_aux's alone where only it does, zeros where neither does."""
    both = [i for i, (a, b) in enumerate(zip(g_main, g_aux, strict=True))
            if a is not None and b is not None]
    out = [a if a is not None else b if b is not None else torch.zeros_like(p)
           for p, a, b in zip(params, g_main, g_aux, strict=True)]
    if both:
        mixed = strategy.combine_grads([g_main[i] for i in both], [g_aux[i] for i in both])
        for i, g in zip(both, mixed, strict=True):
            out[i] = g
    return out


def replay_point(generator: torch.Generator, device: torch.device) -> tuple:
    """What `losses_again` needs to draw a step's random numbers again: the epoch
    generator's state (the augmented view comes next) and the global RNG's (dropout), taken
    before the step's forward pass."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return generator.get_state(), torch.get_rng_state(), cuda


def losses_again(model, inputs, targets, cfg, epoch: int, replay: tuple):
    """The losses of a batch once more, after the step (`Strategy.needs_new_losses`): under
    `torch.no_grad`, the model in training mode, with the same augmented view (drawn from a
    copy of the epoch generator at its state in `replay`) and the same dropout masks (the
    global RNG set to its state in `replay`, then restored), so that only the new weights
    differ. Neither the epoch generator nor the global RNG moves: the next batches and
    draws are those of every other strategy."""
    generator_state, cpu_state, cuda_state = replay
    generator = torch.Generator()
    generator.set_state(generator_state)
    devices = [inputs.device] if cuda_state is not None else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, inputs.device)
        return compute_losses(model, inputs, targets, cfg, epoch, generator)


def epoch_batches(task: Task, batch_size: int, generator: torch.Generator,
                  device: torch.device
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The training split as (inputs, targets, rows) batches of `batch_size`, inputs and
    targets on `device`, `rows` the batch's row indices into `task.train` (on the CPU), in an
    order drawn from `generator` (the epoch's, `epoch_generator(batch seed, epoch)`), which
    then goes on to draw the epoch's augmentations: the same batches for every strategy."""
    order = torch.randperm(len(task.train), generator=generator)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield (task.train.inputs[idx].to(device, non_blocking=True),
               task.train.targets[idx].to(device, non_blocking=True), idx)


class SingleModel:
    """The loop's engine for one run (lossbench/training/loop.py): its model (fresh weights
    from the init seed, `init_model`), strategy and optimiser, resumed from the run's
    checkpoint when there is one. `heldout`: AdaFlood's table of held-out losses, shaped
    like `task.train.targets` (one per training target), or None."""

    def __init__(self, run: RunState, model: torch.nn.Module, task: Task,
                 device: torch.device, heldout: torch.Tensor | None = None) -> None:
        self.runs, self.template, self.task, self.device = [run], model, task, device
        self.heldout = heldout.to(device) if heldout is not None else None
        self.strategy = run.objective.weighting.to(device)
        if self.strategy.needs_shared_layer:
            self.strategy.set_shared_layer(last_shared_layer(model))
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
        self.strategy.begin_epoch(epoch, run_seeds(cfg.seed).batch)
        again = self.strategy.needs_new_losses
        batches = epoch_batches(self.task, cfg.train.batch_size, generator, self.device)
        for k, (inputs, targets, rows) in enumerate(batches, 1):
            set_lr(self.optimizer, cfg.optim, cfg.train.epochs, epoch, k, epoch_steps)
            replay = replay_point(generator, self.device) if again else None
            losses = compute_losses(model, inputs, targets, cfg.losses, epoch, generator)
            heldout = (self.heldout[rows.to(self.device)][targets > 0]
                       if self.heldout is not None else None)  # ordered as L_main's examples
            step = train_step(model, self.optimizer, run.objective, losses,
                              cfg.strategy.shared_only, heldout)
            if replay is not None:
                new = losses_again(model, inputs, targets, cfg.losses, epoch, replay)
                run.objective.after_step(new.main, new.aux, heldout)
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
    uninterrupted run's (except `seconds`). An AdaFlood run first gets its held-out losses
    (`adaflood.heldout_losses`: from the cache, or its auxiliary models trained now), and its
    summary says what they cost."""
    device = resolve_device(cfg.device)
    heldout, notes = None, {}
    if split_name(cfg.strategy.name)[1] == "adaflood":
        table = heldout_losses(cfg, task, device, SingleModel)
        heldout, notes = table.losses, table.summary()
    model = init_model(task, cfg, device)  # after the auxiliary models: the seed's weights
    objective = build_objective(cfg.strategy.name, cfg.strategy.params, cfg.strategy.b,
                                cfg.strategy.flood_target)
    run = RunState(cfg, objective, checkpoint, notes=notes)
    train_runs([run], SingleModel(run, model, task, device, heldout), task, device, on_epoch,
               on_end)
    return run


def train(cfg: RunConfig, task: Task, on_epoch: Callable[[list[dict]], None] | None = None,
          checkpoint: Path | None = None) -> RunResult:
    """`train_one` for a caller of its own (no run folder): its rows and summary, with
    `wall_seconds`; `on_epoch(rows)` after every epoch."""
    run = train_one(cfg, task, checkpoint,
                    on_epoch=lambda _, rows: on_epoch(rows) if on_epoch else None,
                    on_end=lambda *_: None)
    return RunResult(run.rows, {**run.summary, "wall_seconds": run.seconds})
