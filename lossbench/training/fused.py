"""Fused training: the paired runs of one seed trained together, as one stacked model.

    groups = fusable_groups(cfgs)              # [[plain, flood, reweight, ...], [gcs], ...]
    train_fused(group, task, checkpoints, on_epoch, on_end)

Runs of a seed share data, initial weights and batches, so R of them train as one model
with parameters [R, ...]: per step one vmapped forward (`functional_call`, the random draws of
the augmented view and of dropout made once and shared, `randomness="same"`, as each unfused
run draws them), step_r = objective_r(L_main_r, L_aux_r) per run, one backward of
sum_r step_r.objective (slice r gets exactly its gradient) and one step of the stacked
optimiser (SGD and Adam are elementwise; the stacked model is `stacked.py`). `Stacked` is
the engine of the one training loop (loop.py), which does the rest as for a single run: a
run that stops (patience) or diverges is finished there and cut out of the stack and the
optimiser state; checkpoints resume fused or unfused; `seconds` is the group's epoch time
per run. On resume the runs are grouped by their checkpoint's epoch.

Fusable (`fuse_blocker`): runs that differ only in strategy, b and strategy parameters, with
`fusable = True` weightings (plain, weighted, reweight, dwa, rlw, flooded or not; each run's
`begin_epoch` hook is called as in an unfused run). Not fused, run unfused: uncertainty
(learnable weights), gcs, pcgrad, metabalance (per-run gradients), gradnorm (gradients at
the last shared layer), famo (losses recomputed after the step), any X-adaflood (auxiliary
models and per-example levels of its own before the run), GRU4Rec (no vmap
rule for `aten::gru`), and on CUDA dropout > 0 unless `allow_dropout`: the fused attention
kernels do not vmap, so the fused forward uses the math backend on CUDA, whose dropout draws
differ from those of an unfused run's kernel (on the CPU they are identical).

Fused and unfused runs are equal up to float32 rounding (batched kernels sum in another
order; the tests allow 1e-5 relative). Chaotic dynamics can amplify it: a flooded step
whose total is within rounding of b flips its gradient's sign, as between two devices, so
compare strategies trained the same way. The speed-up is measured by
benchmarks/bench_fused.py (results pages: performance).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lossbench.config import RunConfig, flat
from lossbench.errors import ConfigError
from lossbench.seeds import epoch_generator, run_seeds
from lossbench.strategies import build_objective, split_name, weighting_class
from lossbench.tasks import Split, Task
from lossbench.training.checkpoint import load_checkpoint, to_numpy
from lossbench.training.loop import Best, EndCallback, EpochCallback, RunState, train_runs
from lossbench.training.models import attention_dropout, build_model
from lossbench.training.stacked import (
    Stack,
    Wrapper,
    evaluate_stacked,
    stack_optimizer_states,
    stack_states,
    stacked_losses,
    take,
)
from lossbench.training.trainer import (
    epoch_batches,
    init_model,
    make_optimizer,
    resolve_device,
    set_lr,
    steps_per_epoch,
)

FUSABLE_MODELS = ("sasrec",)
"""Models whose forward vmaps (GRU4Rec's `aten::gru` has no batching rule)."""
PER_RUN_FIELDS = ("strategy", "b", "b_example", "params")
"""The only settings in which the runs of a fused group may differ."""


# --- which runs fuse ---------------------------------------------------------------------


def fuse_blocker(cfg: RunConfig, allow_dropout: bool = False) -> str | None:
    """Why `cfg` cannot train in a fused group (one line), or None when it can."""
    weighting, flooding = split_name(cfg.strategy.name)
    if flooding == "adaflood":
        return (f"strategy '{cfg.strategy.name}' is not fusable (AdaFlood: auxiliary models and "
                "per-example flood levels of its own)")
    cls = weighting_class(weighting)
    if (not cls.fusable or cls.needs_grads or cls.needs_new_losses
            or cls.needs_shared_layer):
        return (f"strategy '{cfg.strategy.name}' is not fusable (learnable weights, per-run "
                "gradients or losses recomputed after the step)")
    if cfg.model.name not in FUSABLE_MODELS:
        return f"model '{cfg.model.name}' cannot be vmapped"
    dropout = cfg.model.dropout > 0 or attention_dropout(cfg.model) > 0
    if resolve_device(cfg.device).type == "cuda" and dropout and not allow_dropout:
        return "dropout > 0 on CUDA: fused runs would draw other dropout masks than unfused"
    return None


def shared_key(cfg: RunConfig) -> str:
    """Every setting but PER_RUN_FIELDS, as a string: runs with equal keys may fuse."""
    shared = {k: v for k, v in flat(cfg).items() if k not in PER_RUN_FIELDS}
    return json.dumps(shared, sort_keys=True, default=str)


def can_fuse(cfgs: list[RunConfig], allow_dropout: bool = False) -> bool:
    """True when every run is fusable and all share every setting but PER_RUN_FIELDS."""
    return (bool(cfgs) and all(fuse_blocker(c, allow_dropout) is None for c in cfgs)
            and len({shared_key(c) for c in cfgs}) == 1)


def fusable_groups(cfgs: list[RunConfig], allow_dropout: bool = False,
                   max_size: int | None = None) -> list[list[RunConfig]]:
    """Every run in exactly one group, groups in the order of their first run: the fusable
    runs with equal `shared_key` together (at most `max_size` per group), every other run
    alone. A group of one trains unfused; `train_fused` trains the others."""
    out: list[list[RunConfig]] = []
    open_groups: dict[str, list[RunConfig]] = {}
    for cfg in cfgs:
        if fuse_blocker(cfg, allow_dropout) is not None:
            out.append([cfg])
            continue
        key = shared_key(cfg)
        if key not in open_groups or (max_size and len(open_groups[key]) >= max_size):
            open_groups[key] = []
            out.append(open_groups[key])
        open_groups[key].append(cfg)
    return out


# --- one fused group -----------------------------------------------------------------------


def resume(run: RunState, task: Task, device: torch.device) -> tuple | None:
    """Load `run`'s checkpoint, if any, into a model and an optimiser of its own (setting
    the run's rows, best epoch and first epoch); return their state dicts and the RNG state
    the checkpoint restored, or None without a checkpoint."""
    if run.checkpoint is None or not run.checkpoint.exists():
        return None
    model = build_model(task.n_items, run.cfg.task.max_len, run.cfg.model).to(device)
    optimizer = make_optimizer(model, run.cfg.optim)
    done, run.rows, best = load_checkpoint(run.checkpoint, model, optimizer,
                                           run.objective.weighting)
    run.first_epoch, run.best = done + 1, Best(**best)
    rng = (torch.get_rng_state(),
           torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])
    return model.state_dict(), optimizer.state_dict(), rng


class Stacked:
    """The loop's engine for a fused group (all at the same epoch): the runs' weights as one
    `Stack` on the init seed's model (`template`, whose own weights the stack does not use;
    the loop loads a run's best weights into it for the test split), one stacked optimiser,
    and the runs' objectives."""

    def __init__(self, runs: list[RunState], resumed: list[tuple | None], task: Task,
                 device: torch.device) -> None:
        cfg = runs[0].cfg
        self.runs, self.task, self.device = list(runs), task, device
        self.template = init_model(task, cfg, device)  # the seed's weights; seeds dropout
        self.stack = stack_states(self.template, [r[0] if r else self.template.state_dict()
                                                  for r in resumed])
        self.optimizer = make_optimizer(self.stack, cfg.optim)
        if resumed[0]:
            self.optimizer.load_state_dict(stack_optimizer_states([r[1] for r in resumed]))
            rng_cpu, rng_cuda = resumed[0][2]
            torch.set_rng_state(rng_cpu)
            if rng_cuda and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng_cuda)
        self.wrapper = Wrapper(self.template, cfg.losses)

    def train_epoch(self, epoch: int) -> torch.Tensor:
        """One pass over the training split for every run of the stack, batches and draws as
        `SingleModel.train_epoch`; every step's five numbers per run, [steps, R, 5] on the
        host (they stay on the device until the epoch ends)."""
        cfg, task = self.runs[0].cfg, self.task
        generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
        epoch_steps = steps_per_epoch(task, cfg.train.batch_size)
        steps = []
        self.wrapper.train()
        for run in self.runs:  # each run's strategy, as an unfused run's (RLW's draws)
            run.objective.weighting.begin_epoch(epoch, run_seeds(cfg.seed).batch)
        batches = epoch_batches(task, cfg.train.batch_size, generator, self.device)
        for k, (inputs, targets, _) in enumerate(batches, 1):
            set_lr(self.optimizer, cfg.optim, cfg.train.epochs, epoch, k, epoch_steps)
            numbers, objectives = [], []
            losses = stacked_losses(self.wrapper, self.stack, inputs, targets, epoch,
                                    generator)
            for run, (main, aux) in zip(self.runs, losses, strict=True):
                step = run.objective(main, aux)
                objectives.append(step.objective)
                numbers += [step.total, step.objective, main.mean, aux.mean, step.below]
            self.optimizer.zero_grad(set_to_none=True)
            torch.stack(objectives).sum().backward()
            self.optimizer.step()
            steps.append(torch.stack([x.detach().float() for x in numbers])
                         .view(len(self.runs), 5))
        return torch.stack(steps).cpu()

    def evaluate(self, split: Split) -> list[dict]:
        """Every run's validation metrics, in one vmapped evaluation per batch."""
        cfg = self.runs[0].cfg
        return evaluate_stacked(self.wrapper, self.stack, split,
                                batch_size=cfg.train.eval_batch_size, device=self.device,
                                exclude_seen=cfg.train.exclude_seen)

    def states(self) -> list[tuple[dict, dict]]:
        """Per run (weights, optimiser state), host copies: the stack is copied to the host
        once and sliced there."""
        weights = to_numpy(self.stack.params | self.stack.buffers)
        opt_state = to_numpy(self.optimizer.state_dict())
        return [({k: np.array(v[r]) for k, v in weights.items()}, take(opt_state, r))
                for r in range(len(self.runs))]

    def keep(self, indices: list[int]) -> None:
        """Cut the other runs out of every weight and optimiser-state tensor."""
        if len(indices) == len(self.runs):
            return
        self.runs = [self.runs[i] for i in indices]
        if not indices:
            return
        state = take(self.optimizer.state_dict(), indices)
        self.stack = Stack({k: v.detach()[indices].requires_grad_()
                            for k, v in self.stack.params.items()},
                           take(self.stack.buffers, indices))
        self.optimizer = make_optimizer(self.stack, self.runs[0].cfg.optim)
        self.optimizer.load_state_dict(state)


def train_fused(cfgs: list[RunConfig], task: Task, checkpoints: list[Path],
                on_epoch: EpochCallback, on_end: EndCallback,
                allow_dropout: bool = False) -> list[RunState]:
    """Train the runs `cfgs` (one seed: `can_fuse`) together with the one loop and a
    `Stacked` engine, checkpoint i being run i's; returns their states (each with its rows
    and summary). Checkpoints are resumed, runs grouped by their epoch. ConfigError for runs
    that cannot fuse."""
    if not can_fuse(cfgs, allow_dropout):
        reasons = {fuse_blocker(c, allow_dropout) for c in cfgs} - {None}
        raise ConfigError(f"these runs cannot be trained fused: "
                          f"{'; '.join(sorted(reasons)) or 'their settings differ'}")
    if len({Path(c).resolve() for c in checkpoints}) != len(cfgs):
        raise ConfigError("train_fused needs one distinct checkpoint file per run")
    device = resolve_device(cfgs[0].device)
    runs, resumed = [], []
    for cfg, checkpoint in zip(cfgs, checkpoints, strict=True):
        objective = build_objective(cfg.strategy.name, cfg.strategy.params, cfg.strategy.b,
                                    cfg.strategy.flood_target)
        objective.weighting.to(device)
        runs.append(RunState(cfg, objective, Path(checkpoint)))
        resumed.append(resume(runs[-1], task, device))
    for first_epoch in sorted({run.first_epoch for run in runs}):
        group = [i for i, run in enumerate(runs) if run.first_epoch == first_epoch]
        engine = Stacked([runs[i] for i in group], [resumed[i] for i in group], task, device)
        train_runs(engine.runs, engine, task, device, on_epoch, on_end)
    return runs
