"""Fused training: the paired runs of one seed trained together, as one stacked model.

    groups = fusable_groups(cfgs)              # [[plain, flood, reweight, ...], [gcs], ...]
    results = run_fused(group, task, run_dirs, records, events)   # [(summary, rows), ...]

Runs of a seed share data, initial weights and batches, so R of them train as one model
with parameters [R, ...]: per step one vmapped forward (`functional_call`, the random draws of
the augmented view and of dropout made once and shared, `randomness="same"`, as each unfused
run draws them), step_r = objective_r(L_main_r, L_aux_r) per run, one backward of
sum_r step_r.objective (slice r gets exactly its gradient) and one step of the stacked
optimiser (SGD and Adam are elementwise; the stacked model is `stacked.py`). A run that
stops (patience) or diverges is finished there and cut out of the stack and the optimiser
state. Folders are written as `experiment.execute_run` writes them (RunRecorder,
`trainer.save_checkpoint`: checkpoints resume fused or unfused); `seconds` is the group's
epoch time per run; summary.json adds `fused` (the group's size). On resume the runs are
grouped by their checkpoint's epoch.

Fusable (`fuse_blocker`): runs that differ only in strategy, b and strategy parameters, with
`fusable = True` weightings (plain, weighted, reweight, dwa, flooded or not). Not fused, run
unfused: uncertainty (learnable weights), gcs, pcgrad (per-run gradients), GRU4Rec (no vmap
rule for `aten::gru`), and on CUDA dropout > 0 unless `allow_dropout`: the fused attention
kernels do not vmap, so the fused forward uses the math backend on CUDA, whose dropout draws
differ from those of an unfused run's kernel (on the CPU they are identical).

Tolerance: batched kernels sum in another order, so fused and unfused runs differ by float32
rounding: at most 1.5e-7 relative on every number for tests/tiny.toml (CPU and H200); the
tests allow 1e-5. Chaotic dynamics amplify it: on the default task it stays below 1.4e-6 for
30 epochs, then a flooded step whose total is within rounding of b flips its gradient's sign
and flooded runs part (val_loss up to 6 % apart; best epochs kept, test metrics within
0.4 %), as between two devices: compare strategies trained the same way.

Measured 2026-11-27, `benchmarks/bench_fused.py`: on 2 CPU cores no gain (the CPU does the
R runs' arithmetic either way). One H200 (PyTorch 2.11): the default comparison (12 runs in 3
groups of 4) 54.3 s -> 26.4 s (2.1x); 12 flood levels of a seed (one group) 41.2 s -> 8.9 s
(4.6x); ml-100k `all` x 3 seeds (allow_dropout) 119.7 s -> 73.0 s (1.6x). A fused step of R
runs costs about two single steps (vmap adds ~60 % operations, and the GPU is bound by kernel
launches), so the gain is about R / 2.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lossbench.config import RunConfig, flat
from lossbench.errors import ConfigError
from lossbench.results.folders import RunRecorder, interrupted_summary, summary_head
from lossbench.seeds import epoch_generator, run_seeds
from lossbench.strategies import Objective, build_objective, split_name, weighting_class
from lossbench.tasks import Task
from lossbench.training.losses import aux_tau
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
    Best,
    end_summary,
    epoch_batches,
    init_model,
    is_better,
    load_checkpoint,
    make_optimizer,
    resolve_device,
    save_checkpoint,
    set_lr,
    steps_per_epoch,
    to_numpy,
)

FUSABLE_MODELS = ("sasrec",)
"""Models whose forward vmaps (GRU4Rec's `aten::gru` has no batching rule)."""
PER_RUN_FIELDS = ("strategy", "b", "b_example", "params")
"""The only settings in which the runs of a fused group may differ."""


# --- which runs fuse ---------------------------------------------------------------------


def fuse_blocker(cfg: RunConfig, allow_dropout: bool = False) -> str | None:
    """Why `cfg` cannot train in a fused group (one line), or None when it can."""
    cls = weighting_class(split_name(cfg.strategy.name)[0])
    if not cls.fusable or cls.needs_grads:
        return (f"strategy '{cfg.strategy.name}' is not fusable (learnable weights or per-run "
                "gradients)")
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
    alone. Run a group of one the ordinary way; `run_fused` the others."""
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


@dataclass
class Run:
    """One run of a fused group: settings, folder, objective, progress."""

    cfg: RunConfig
    dir: Path
    record: dict                  # its config.json
    objective: Objective
    best: Best
    rows: list[dict] = field(default_factory=list)
    first_epoch: int = 1
    resumed: tuple | None = None  # from its checkpoint: (weights, optimiser state, RNG)
    seconds: float = 0.0          # its share of the group's time
    result: tuple[dict, list[dict]] | None = None

    @property
    def checkpoint(self) -> Path:
        return self.dir / "checkpoint.pkl"


class Snapshot:
    """A prepared state dict posing as a model or optimiser for `trainer.save_checkpoint`."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def state_dict(self) -> dict:
        return self.state


def resume_state(run: Run, task: Task, device: torch.device) -> None:
    """Load `run`'s checkpoint, if any, with `trainer.load_checkpoint` into a model and an
    optimiser of its own; keep their state dicts, the RNG state, the rows and best epoch."""
    if not run.checkpoint.exists():
        return
    model = build_model(task.n_items, run.cfg.task.max_len, run.cfg.model).to(device)
    optimizer = make_optimizer(model, run.cfg.optim)
    done, run.rows, run.best = load_checkpoint(run.checkpoint, model, optimizer,
                                               run.objective.weighting)
    rng = (torch.get_rng_state(),
           torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])
    run.first_epoch, run.resumed = done + 1, (model.state_dict(), optimizer.state_dict(), rng)


def run_fused(cfgs: list[RunConfig], task: Task, run_dirs: list[Path], records: list[dict],
              events=None, allow_dropout: bool = False) -> list[tuple[dict, list[dict]]]:
    """Train the runs `cfgs` (one seed: `can_fuse`) together; per run (summary, rows), as
    `experiment.execute_run` returns them, each folder written as it writes it (`records[i]`
    is run i's config.json). Checkpoints are resumed, runs grouped by their epoch.
    `events.epoch_done(cfg, row)` after every epoch of every run. Ctrl-C or SIGTERM marks
    the unfinished runs `interrupted` and re-raises. ConfigError for runs that cannot fuse."""
    if not can_fuse(cfgs, allow_dropout):
        reasons = {fuse_blocker(c, allow_dropout) for c in cfgs} - {None}
        raise ConfigError(f"these runs cannot be trained fused: "
                          f"{'; '.join(sorted(reasons)) or 'their settings differ'}")
    if len({Path(d).resolve() for d in run_dirs}) != len(cfgs):
        raise ConfigError("run_fused needs one distinct folder per run")
    device = resolve_device(cfgs[0].device)
    runs = []
    for cfg, run_dir, record in zip(cfgs, run_dirs, records, strict=True):
        objective = build_objective(cfg.strategy.name, cfg.strategy.params, cfg.strategy.b)
        objective.weighting.to(device)
        best = Best(math.inf if cfg.train.best_by == "val_loss" else -math.inf)
        runs.append(Run(cfg, Path(run_dir), record, objective, best))
        resume_state(runs[-1], task, device)
    for first_epoch in sorted({run.first_epoch for run in runs}):
        train_group([r for r in runs if r.first_epoch == first_epoch], task, device, events,
                    len(runs))
    return [run.result for run in runs]


def train_group(runs: list[Run], task: Task, device: torch.device, events, size: int) -> None:
    """Train `runs`, all at the same epoch, as one stack, as `trainer.train` trains one run;
    each run is finished (`finish`) where it ends."""
    cfg = runs[0].cfg
    model = init_model(task, cfg, device)  # the seed's weights; seeds the dropout RNG
    stack = stack_states(model, [r.resumed[0] if r.resumed else model.state_dict()
                                 for r in runs])
    optimizer = make_optimizer(stack, cfg.optim)
    if runs[0].resumed:
        optimizer.load_state_dict(stack_optimizer_states([r.resumed[1] for r in runs]))
        rng_cpu, rng_cuda = runs[0].resumed[2]
        torch.set_rng_state(rng_cpu)
        if rng_cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng_cuda)
    wrapper = Wrapper(model, cfg.losses)
    recorders = {id(run): RunRecorder(run.dir) for run in runs}
    for run in runs:
        recorders[id(run)].start(run.record, resume=run.checkpoint.exists())
        if run.rows:
            epoch_done(run, recorders, events)
    active = list(runs)
    try:
        for epoch in range(runs[0].first_epoch, cfg.train.epochs + 1):
            stopped = [r for r in active
                       if cfg.train.patience and epoch - 1 - r.best.epoch >= cfg.train.patience]
            for run in stopped:
                finish(run, "complete", None, model, task, device, recorders, size)
            stack, optimizer, active = drop(stack, optimizer, active, stopped, cfg)
            if not active:
                break
            started, trained = time.perf_counter(), len(active)
            means = train_epoch(wrapper, stack, optimizer, active, task, cfg, epoch, device)
            diverged = [r for r, m in zip(active, means, strict=True) if "diverged_step" in m]
            for run, m in zip(active, means, strict=True):
                if "diverged_step" in m:
                    run.seconds += (time.perf_counter() - started) / trained
                    finish(run, "diverged", {"epoch": epoch, "step": m["diverged_step"]},
                           model, task, device, recorders, size)
            stack, optimizer, active = drop(stack, optimizer, active, diverged, cfg)
            if not active:
                break
            vals = evaluate_stacked(wrapper, stack, task.val, batch_size=cfg.train.eval_batch_size,
                                    device=device, exclude_seen=cfg.train.exclude_seen)
            means = [m for m in means if "diverged_step" not in m]
            share = (time.perf_counter() - started) / trained  # the epoch's time per run
            end_epoch(stack, optimizer, active, means, vals, epoch, share, recorders, events)
        for run in active:
            finish(run, "complete", None, model, task, device, recorders, size)
    except KeyboardInterrupt:
        for run in runs:
            if run.result is None:
                recorders[id(run)].finish(interrupted_summary(flat(run.cfg), len(run.rows)))
        raise


def train_epoch(wrapper: Wrapper, stack: Stack, optimizer: torch.optim.Optimizer,
                runs: list[Run], task: Task, cfg: RunConfig, epoch: int,
                device: torch.device) -> list[dict]:
    """One pass over the training split for every run of the stack, batches and draws as in
    `trainer.train_epoch`; per run the epoch means of its losses (that function's keys), or
    `{"diverged_step": k}` when its step k (1-based) had a non-finite number. The numbers
    stay on the device until the epoch ends."""
    generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
    steps = []  # per step [R, 5]: total, objective, L_main, L_aux, fraction below b
    epoch_steps = steps_per_epoch(task, cfg.train.batch_size)
    wrapper.train()
    batches = epoch_batches(task, cfg.train.batch_size, generator, device)
    for k, (inputs, targets) in enumerate(batches, 1):
        set_lr(optimizer, cfg.optim, cfg.train.epochs, epoch, k, epoch_steps)
        numbers, objectives = [], []
        for run, (main, aux) in zip(runs, stacked_losses(wrapper, stack, inputs, targets,
                                                         epoch, generator), strict=True):
            step = run.objective(main, aux)
            objectives.append(step.objective)
            numbers += [step.total, step.objective, main.mean, aux.mean, step.below]
        optimizer.zero_grad(set_to_none=True)
        torch.stack(objectives).sum().backward()
        optimizer.step()
        steps.append(torch.stack([x.detach().float() for x in numbers]).view(len(runs), 5))
    values = torch.stack(steps).cpu()
    out = []
    for r in range(len(runs)):
        finite = torch.isfinite(values[:, r]).all(dim=1)
        if not bool(finite.all()):
            out.append({"diverged_step": int((~finite).nonzero()[0, 0]) + 1})
            continue
        raw, total, main, aux, below = values[:, r].T.tolist()
        n = len(raw)
        out.append({"train_loss": sum(raw) / n, "train_objective": sum(total) / n,
                    "train_main_loss": sum(main) / n, "train_aux_loss": sum(aux) / n,
                    "flood_frac": sum(below) / n})
    return out


def end_epoch(stack: Stack, optimizer: torch.optim.Optimizer, runs: list[Run],
              means: list[dict], vals: list[dict], epoch: int, seconds: float,
              recorders: dict, events) -> None:
    """Per run, as `trainer.train` after an epoch: its row, its best epoch (a host copy of
    its weights), its checkpoint, metrics.csv, the event. The stacked weights and optimiser
    state are copied to the host once and sliced there."""
    cfg = runs[0].cfg
    weights, opt_state = to_numpy(stack.params | stack.buffers), to_numpy(optimizer.state_dict())
    for r, (run, m, val) in enumerate(zip(runs, means, vals, strict=True)):
        strategy = run.objective.weighting
        state = strategy.log_state()  # the state this epoch trained with
        strategy.end_epoch({"main": m["train_main_loss"], "aux": m["train_aux_loss"]})
        val = {f"val_{k}": v for k, v in val.items()}
        row = {"epoch": epoch, **m, "theta": run.objective.theta, **val,
               "aux_tau": aux_tau(epoch, cfg.losses),
               "seconds": seconds, **{k: v for k, v in state.items() if k != "theta"}}
        run.rows.append(row)
        run.seconds += seconds
        if is_better(row[cfg.train.best_by], run.best.value, cfg.train.best_by):
            run.best = Best(row[cfg.train.best_by], epoch,
                            {k: v[r].copy() for k, v in weights.items()}, val)
        save_checkpoint(run.checkpoint, epoch, Snapshot(take(weights, r)),
                        Snapshot(take(opt_state, r)), strategy, run.rows, run.best)
        epoch_done(run, recorders, events)


def epoch_done(run: Run, recorders: dict, events) -> None:
    """metrics.csv with every row so far, then the caller's event (as execute_run's)."""
    recorders[id(run)].epoch(run.rows)
    if events is not None:
        events.epoch_done(run.cfg, run.rows[-1])


def drop(stack: Stack, optimizer: torch.optim.Optimizer, runs: list[Run], gone: list[Run],
         cfg: RunConfig) -> tuple[Stack, torch.optim.Optimizer, list[Run]]:
    """The stack, optimiser and runs without the finished runs `gone`: their slices are cut
    out of every weight and optimiser-state tensor."""
    keep = [i for i, run in enumerate(runs) if run not in gone]
    if not gone or not keep:
        return stack, optimizer, [runs[i] for i in keep]
    state = take(optimizer.state_dict(), keep)
    stack = Stack({k: v.detach()[keep].requires_grad_() for k, v in stack.params.items()},
                  take(stack.buffers, keep))
    optimizer = make_optimizer(stack, cfg.optim)
    optimizer.load_state_dict(state)
    return stack, optimizer, [runs[i] for i in keep]


def finish(run: Run, status: str, diverged_at: dict | None, model: nn.Module, task: Task,
           device: torch.device, recorders: dict, size: int) -> None:
    """summary.json of a run that ended, as `trainer.train` and `execute_run` write it: the
    test split evaluated once with the weights of its best epoch (loaded into `model`, the
    stack's template, whose own weights the stack does not use); its checkpoint goes."""
    cfg, rows = run.cfg, run.rows
    started = time.perf_counter()
    summary = {**summary_head(flat(cfg)),
               **end_summary(cfg, status, diverged_at, run.best, rows,
                             run.objective.flood_level, model, task, device)}
    summary.update(wall_seconds=run.seconds + time.perf_counter() - started, fused=size)
    recorders[id(run)].finish(summary)
    run.checkpoint.unlink(missing_ok=True)
    run.result = (summary, rows)
