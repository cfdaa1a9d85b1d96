"""Fused training: the paired runs of one seed trained together, as one stacked model.

    groups = fusable_groups(cfgs)                  # [[plain, flood, reweight, ...], [gcs], ...]
    results = run_fused(group, task, run_dirs, records, events)   # [(summary, rows), ...]

The runs of a seed share the data, the initial weights and every batch, so R of them can be
one model whose every parameter is a tensor [R, ...] (the R copies stacked), trained by one
forward and one backward pass per step (`torch.func.functional_call` under `torch.vmap`)
instead of R. Each step:

    losses_r = compute_losses(model_r, batch)          # vmapped over r: one pass for all R
    step_r   = objective_r(L_main_r, L_aux_r)          # each run's own strategy (Python loop)
    sum_r step_r.objective  .backward()                # slice r gets exactly grad of step_r
    optimizer.step()                                   # SGD / Adam are elementwise: one
                                                       # stacked optimiser = R optimisers

The augmented view of L_aux (`losses.mask_items`) is drawn once per step from the shared
batch generator (`vmap(randomness="same")`), so every run gets the draw its unfused run gets;
the dropout masks likewise (one draw, shared, from the global RNG as an unfused run draws it:
checked on the CPU). A run that stops (patience) or diverges is finished there (summary.json
written, its test evaluated) and its slice is dropped from the stack and from the optimiser
state, so it cannot move or disturb the others. Validation is one vmapped pass for the R runs
with the metrics of `metrics.py` computed on the R score matrices at once; the test split is
evaluated once per run with `metrics.evaluate`, exactly as an unfused run.

Files. Each run folder is written exactly as `experiment.execute_run` writes it (config.json
first, metrics.csv and checkpoint.pkl after every epoch, summary.json last, through
`recorder.RunRecorder` and `trainer.save_checkpoint`), so a checkpoint written here resumes
unfused and the other way round. `seconds` (metrics.csv) is the group's epoch time divided by
the runs that trained in it, `wall_seconds` (summary.json) the sum of the run's shares plus
its test; summary.json also has `fused` = the number of runs in the group. Resuming: the runs
of a group are grouped by the epoch of their checkpoint (none = 0) and each such set is
trained as one fused group from there, so a kill at any point resumes to exactly the
uninterrupted result.

What fuses (`fuse_blocker`): runs with the same settings except strategy, b and the strategy
parameters (so the same seed, task, model, optimiser and hyperparameters), whose weighting
class says `fusable = True` (plain, weighted, reweight, dwa; with or without batch or
example flooding): loss-level strategies whose objective is a function of the run's own
losses. Not fused, they run unfused in the same command: uncertainty (learnable parameters
in the optimiser), gcs and pcgrad (per-run gradients of L_main and L_aux), plugins unless
they say `fusable = True`, GRU4Rec (`aten::gru` has no vmap batching rule), and, on CUDA,
runs with dropout > 0 (below) unless `allow_dropout`.

Attention. The fused kernels of `scaled_dot_product_attention` have no usable vmap batching
rule (CUDA's efficient kernel fails on the mask's batch dimension, the CPU's flash kernel
falls back to a per-run loop), so the fused forward uses PyTorch's math backend. On the CPU
the unfused run with dropout uses that backend too and the dropout draws are identical; on
CUDA the unfused run draws attention dropout inside the efficient kernel, which a vmapped
run cannot reproduce: fused runs with dropout would be paired with each other but not with
their unfused twins, hence not fused by default there. With dropout 0 (the synthetic task)
fused equals unfused on both devices up to float rounding.

Tolerance. Fused and unfused runs compute the same formulas, but batched matrix products and
reductions sum in another order, so the two agree to float32 rounding per step (measured on
one step: relative 2e-7 on the losses, 3e-7 on the gradients, CPU and CUDA) and the
difference grows slowly with training. tests/test_fused.py allows a relative 1e-4 on every
number of metrics.csv and summary.json for tests/tiny.toml (3 epochs; measured max on the
CPU: see the test's docstring). Inside a fused group runs with equal weights compute
identically: flood with b = 0 equals plain bit for bit, as unfused.

Measured on the CPU (2 shared cores, one torch thread, `benchmarks/bench_fused.py`): no gain
(the CPU does the R runs' arithmetic either way); see that file's docstring for the numbers.
The point is the GPU, where a small model is bound by kernel launches.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from lossbench.config import RunConfig
from lossbench.errors import ConfigError
from lossbench.losses import LossTerm, compute_losses, supcon_temperature
from lossbench.metrics import METRIC_NAMES, evaluate, ranking_metrics, target_ranks
from lossbench.models import build_model
from lossbench.recorder import RunRecorder
from lossbench.seeds import epoch_generator, run_seeds
from lossbench.strategies import Objective, build_objective, split_name, weighting_class
from lossbench.tasks import Split, Task
from lossbench.trainer import (
    Best,
    flooding_summary,
    init_model,
    is_better,
    load_checkpoint,
    make_optimizer,
    resolve_device,
    save_checkpoint,
)

FUSABLE_MODELS = ("sasrec",)
"""Models whose forward vmaps (GRU4Rec's `aten::gru` has no batching rule)."""
PER_RUN_FIELDS = ("strategy", "b", "b_example", "params")
"""The only settings in which the runs of a fused group may differ."""


# --- which runs fuse ---------------------------------------------------------------------


def fuse_blocker(cfg: RunConfig, allow_dropout: bool = False) -> str | None:
    """Why `cfg` cannot train in a fused group (one line), or None when it can."""
    cls = weighting_class(split_name(cfg.strategy)[0])
    if not cls.fusable or cls.needs_grads:
        return (f"strategy '{cfg.strategy}' is not fusable (learnable weights or per-run "
                "gradients)")
    if cfg.model not in FUSABLE_MODELS:
        return f"model '{cfg.model}' cannot be vmapped"
    if resolve_device(cfg.device).type == "cuda" and cfg.dropout > 0 and not allow_dropout:
        return "dropout > 0 on CUDA: fused runs would draw other dropout masks than unfused"
    return None


def shared_key(cfg: RunConfig) -> str:
    """Every setting but PER_RUN_FIELDS, as a string: runs with equal keys may fuse."""
    shared = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in PER_RUN_FIELDS}
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


# --- the stacked model -------------------------------------------------------------------


@dataclass
class Stack:
    """R models' weights, one tensor [R, ...] per parameter (leaves that the optimiser
    updates) and per buffer, keyed by the model's own names. `parameters()` makes it a
    model for `trainer.make_optimizer`."""

    params: dict[str, Tensor]
    buffers: dict[str, Tensor]

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def prefixed(self) -> dict[str, Tensor]:
        """The weights as `functional_call` on a wrapper (`model.<name>`) wants them."""
        return {f"model.{k}": v for k, v in (self.params | self.buffers).items()}


def stack_states(model: nn.Module, states: list[dict]) -> Stack:
    """A Stack from R state dicts of `model`'s architecture (torch.func.stack_module_state
    for state dicts): slice r of every tensor is run r's."""
    names = [n for n, _ in model.named_parameters()]
    buffers = [n for n, _ in model.named_buffers()]
    return Stack({n: torch.stack([s[n] for s in states]).detach().requires_grad_()
                  for n in names},
                 {n: torch.stack([s[n] for s in states]) for n in buffers})


def take(obj, index: int | list[int]):
    """Run `index`'s slice (an int) or a sub-stack (a list) of every stacked tensor (dim > 0)
    in a state dict, an optimiser state dict or a Stack's dicts; anything else unchanged
    (Adam's 0-d `step`, hyperparameters)."""
    if isinstance(obj, (Tensor, np.ndarray)) and obj.ndim > 0:
        return obj[index]
    if isinstance(obj, dict):
        return {k: take(v, index) for k, v in obj.items()}
    return obj


def stack_optimizer_states(states: list[dict]) -> dict:
    """R optimiser state dicts of one-model optimisers -> the stacked optimiser's."""
    first = states[0]
    return {"state": {i: {k: torch.stack([s["state"][i][k] for s in states])
                          if isinstance(v, Tensor) and v.ndim > 0 else v
                          for k, v in per_param.items()}
                      for i, per_param in first["state"].items()},
            "param_groups": first["param_groups"]}


class StepLosses(nn.Module):
    """`functional_call` target for a training step: `compute_losses` on the wrapped model,
    as four tensors (main per example, main mean, aux per anchor, aux mean)."""

    def __init__(self, model: nn.Module, cfg: RunConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, inputs: Tensor, targets: Tensor, epoch: int,
                generator: torch.Generator) -> tuple[Tensor, ...]:
        losses = compute_losses(self.model, inputs, targets, self.cfg, epoch, generator)
        return (*losses.main, *losses.aux)


class LastScores(nn.Module):
    """`functional_call` target for evaluation: scores of every item at the last position,
    float32, as `metrics.evaluate` computes them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model.logits(self.model(inputs)[:, -1]).float()


@contextmanager
def attention_backend(device: torch.device) -> Iterator[None]:
    """The attention kernels of the fused forward (module docstring): PyTorch's math backend
    on CUDA; on the CPU the usual choice, which vmap runs once per run, as an unfused run
    computes it (its warning about a "performance drop" is silenced)."""
    if device.type == "cuda":
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            backend = sdpa_kernel([SDPBackend.MATH])
        except ImportError:  # torch 2.2
            backend = torch.backends.cuda.sdp_kernel(enable_flash=False,
                                                     enable_mem_efficient=False)
        with backend:
            yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop")
        yield


def stacked_losses(wrapper: StepLosses, stack: Stack, inputs: Tensor, targets: Tensor,
                   epoch: int, generator: torch.Generator) -> list[tuple[LossTerm, LossTerm]]:
    """(L_main, L_aux) of every run on one batch, in one vmapped pass; the random draws
    (augmented view, dropout) happen once and are shared, as in the unfused runs."""
    def one(weights: dict[str, Tensor]) -> tuple[Tensor, ...]:
        return functional_call(wrapper, weights, (inputs, targets, epoch, generator))

    with attention_backend(inputs.device):
        main, main_mean, aux, aux_mean = vmap(one, randomness="same")(stack.prefixed())
    return [(LossTerm(main[r], main_mean[r]), LossTerm(aux[r], aux_mean[r]))
            for r in range(main.shape[0])]


@torch.inference_mode()
def evaluate_stacked(scorer: LastScores, stack: Stack, split: Split, *, batch_size: int,
                     device: torch.device, exclude_seen: bool = False) -> list[dict]:
    """`metrics.evaluate` for every run of the stack (one dict per run): one vmapped forward
    per batch, the metrics of the R score matrices computed as one [R * n] batch and read
    from the device once per batch."""
    was_training = scorer.training
    scorer.eval()
    n_runs = next(iter(stack.params.values())).shape[0]
    sums = [[0.0] * len(METRIC_NAMES) for _ in range(n_runs)]
    for start in range(0, len(split), batch_size):
        inputs = split.inputs[start:start + batch_size].to(device, non_blocking=True)
        targets = split.targets[start:start + batch_size].to(device, non_blocking=True)
        with attention_backend(device):
            scores = vmap(lambda w, x: functional_call(scorer, w, (x,)),
                          in_dims=(0, None))(stack.prefixed(), inputs)
        n = targets.shape[0]
        scores, targets = scores.reshape(n_runs * n, -1), targets.repeat(n_runs)
        loss = F.cross_entropy(scores, targets, reduction="none")
        if exclude_seen:
            scores = scores.scatter(1, inputs.repeat(n_runs, 1), -math.inf)
        metrics = ranking_metrics(*target_ranks(scores, targets))
        per_run = torch.stack([loss, *(metrics[m] for m in METRIC_NAMES[1:])]).view(-1, n_runs, n)
        for run_sums, values in zip(sums, per_run.sum(2).T.tolist(), strict=True):
            for i, value in enumerate(values):
                run_sums[i] += value
    scorer.train(was_training)
    return [{m: s / len(split) for m, s in zip(METRIC_NAMES, run_sums, strict=True)}
            for run_sums in sums]


# --- one fused group -----------------------------------------------------------------------


@dataclass
class Run:
    """One run of a fused group: its settings, folder, objective and progress."""

    cfg: RunConfig
    dir: Path
    record: dict
    objective: Objective
    recorder: RunRecorder
    best: Best
    rows: list[dict] = field(default_factory=list)
    first_epoch: int = 1
    weights: dict | None = None     # from its checkpoint; None = the seed's initial weights
    optimizer: dict | None = None   # its one-model optimiser state from the checkpoint
    rng: tuple | None = None        # the global RNG state from the checkpoint (dropout)
    seconds: float = 0.0            # its share of the group's time (wall_seconds)
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


def rng_state() -> tuple:
    return (torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def resume_state(run: Run, task: Task, device: torch.device) -> None:
    """Load `run`'s checkpoint, if any, through `trainer.load_checkpoint` into a model and
    optimiser of its own; keep their state dicts, the rows, the best epoch and the RNG."""
    if not run.checkpoint.exists():
        return
    model = build_model(task.n_items, run.cfg).to(device)
    optimizer = make_optimizer(model, run.cfg)
    done, run.rows, run.best = load_checkpoint(run.checkpoint, model, optimizer,
                                               run.objective.weighting)
    run.first_epoch = done + 1
    run.weights, run.optimizer, run.rng = model.state_dict(), optimizer.state_dict(), rng_state()


def run_fused(cfgs: list[RunConfig], task: Task, run_dirs: list[Path], records: list[dict],
              events=None, allow_dropout: bool = False) -> list[tuple[dict, list[dict]]]:
    """Train the runs `cfgs` (one seed, `can_fuse`) together; per run (summary, rows), as
    `experiment.execute_run` returns them, and each folder written as it writes it
    (`records[i]` is run i's config.json). Checkpoints are resumed, grouped by their epoch.
    `events.epoch_done(cfg, row)` is called for every run and epoch. Ctrl-C or SIGTERM marks
    the unfinished runs `interrupted` and re-raises."""
    if not can_fuse(cfgs, allow_dropout):
        reasons = {fuse_blocker(c, allow_dropout) for c in cfgs} - {None}
        raise ConfigError(f"these runs cannot be trained fused: "
                          f"{'; '.join(sorted(reasons)) or 'their settings differ'}")
    if len({Path(d).resolve() for d in run_dirs}) != len(cfgs):
        raise ConfigError("run_fused needs one distinct folder per run")
    device = resolve_device(cfgs[0].device)
    runs = []
    for cfg, run_dir, record in zip(cfgs, run_dirs, records, strict=True):
        objective = build_objective(cfg.strategy, cfg.params, cfg.b)
        objective.weighting.to(device)
        best = Best(math.inf if cfg.best_by == "val_loss" else -math.inf)
        runs.append(Run(cfg, Path(run_dir), record, objective, RunRecorder(Path(run_dir)),
                        best=best))
        resume_state(runs[-1], task, device)
    for first_epoch in sorted({run.first_epoch for run in runs}):
        train_group([r for r in runs if r.first_epoch == first_epoch], task, device, events,
                    len(runs))
    return [run.result for run in runs]


def train_group(runs: list[Run], task: Task, device: torch.device, events, size: int) -> None:
    """Train `runs` (all starting at the same epoch) as one stack to their ends; each run's
    folder is finished as it ends (see `finish`)."""
    cfg = runs[0].cfg
    model = init_model(task, cfg, device)  # the seed's weights; seeds the dropout RNG
    if runs[0].rng is not None:
        torch.set_rng_state(runs[0].rng[0])
        if runs[0].rng[1] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(runs[0].rng[1])
    stack = stack_states(model, [r.weights or model.state_dict() for r in runs])
    optimizer = make_optimizer(stack, cfg)
    if runs[0].optimizer is not None:
        optimizer.load_state_dict(stack_optimizer_states([r.optimizer for r in runs]))
    step_losses, scorer = StepLosses(model, cfg), LastScores(model)
    for run in runs:
        run.recorder.start(run.record, resume=run.checkpoint.exists())
        if run.rows:
            epoch_done(run, events)
    active = list(runs)
    try:
        for epoch in range(runs[0].first_epoch, cfg.epochs + 1):
            stopped = [r for r in active
                       if cfg.patience and epoch - 1 - r.best.epoch >= cfg.patience]
            for run in stopped:
                finish(run, "complete", None, model, task, device, size)
            stack, optimizer, active = drop(stack, optimizer, active, stopped, cfg)
            if not active:
                break
            started, trained = time.perf_counter(), len(active)
            means = train_epoch(step_losses, stack, optimizer, active, task, cfg, epoch,
                                device)
            diverged = [r for r, m in zip(active, means, strict=True) if "diverged_step" in m]
            for run, m in zip(active, means, strict=True):
                if "diverged_step" in m:
                    run.seconds += (time.perf_counter() - started) / trained
                    finish(run, "diverged", {"epoch": epoch, "step": m["diverged_step"]},
                           model, task, device, size)
            means = [m for m in means if "diverged_step" not in m]
            stack, optimizer, active = drop(stack, optimizer, active, diverged, cfg)
            if not active:
                break
            vals = evaluate_stacked(scorer, stack, task.val, batch_size=cfg.eval_batch_size,
                                    device=device, exclude_seen=cfg.exclude_seen)
            share = (time.perf_counter() - started) / trained  # the epoch's time per run
            end_epoch(stack, optimizer, active, means, vals, epoch, share, events)
        for run in active:
            finish(run, "complete", None, model, task, device, size)
    except KeyboardInterrupt:
        for run in runs:
            if run.result is None:
                run.recorder.finish({"strategy": run.cfg.strategy, "b": run.cfg.b,
                                     "seed": run.cfg.seed, "status": "interrupted",
                                     "epochs_run": len(run.rows)})
        raise


def train_epoch(step_losses: StepLosses, stack: Stack, optimizer: torch.optim.Optimizer,
                runs: list[Run], task: Task, cfg: RunConfig, epoch: int,
                device: torch.device) -> list[dict]:
    """One pass over the training split for every run of the stack, batches and draws as
    `trainer.train_epoch`; per run the epoch means of the losses (its keys), or
    `{"diverged_step": k}` when its step k (1-based) had a non-finite number. The numbers
    stay on the device until the epoch ends."""
    generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
    order = torch.randperm(len(task.train), generator=generator)
    steps = []  # per step [R, 5]: total, objective, L_main, L_aux, fraction below b
    step_losses.train()
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        inputs = task.train.inputs[idx].to(device, non_blocking=True)
        targets = task.train.targets[idx].to(device, non_blocking=True)
        terms = stacked_losses(step_losses, stack, inputs, targets, epoch, generator)
        numbers, objectives = [], []
        for run, (main, aux) in zip(runs, terms, strict=True):
            step = run.objective(main, aux)
            objectives.append(step.objective)
            numbers += [step.total, step.objective, main.mean, aux.mean, step.below]
        optimizer.zero_grad(set_to_none=True)
        torch.stack(objectives).sum().backward()
        optimizer.step()
        steps.append(torch.stack([x.detach().float() for x in numbers]).view(len(runs), 5))
    values = torch.stack(steps).cpu()  # [steps, R, 5]
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
              events) -> None:
    """Per run, as `trainer.train` after an epoch: the row, the best epoch (a host copy of
    its weights), the checkpoint, metrics.csv and the event. The stacked weights and
    optimiser state go to the host once, then are sliced per run."""
    cfg = runs[0].cfg
    weights = {k: v.detach().cpu().numpy() for k, v in (stack.params | stack.buffers).items()}
    opt_state = optimizer.state_dict()
    opt_state = {**opt_state, "state": {i: {k: v.detach().cpu().numpy()
                                            if isinstance(v, Tensor) and v.ndim > 0 else v
                                            for k, v in s.items()}
                                        for i, s in opt_state["state"].items()}}
    for r, (run, m, val) in enumerate(zip(runs, means, vals, strict=True)):
        strategy = run.objective.weighting
        state = strategy.log_state()  # the state this epoch trained with
        strategy.end_epoch({"main": m["train_main_loss"], "aux": m["train_aux_loss"]})
        row = {"epoch": epoch, **m, "theta": run.objective.theta,
               **{f"val_{k}": v for k, v in val.items()},
               "aux_tau": supcon_temperature(epoch, cfg) if cfg.aux != "none" else 0.0,
               "seconds": seconds, **{k: v for k, v in state.items() if k != "theta"}}
        run.rows.append(row)
        run.seconds += seconds
        if is_better(row[cfg.best_by], run.best.value, cfg.best_by):
            run.best = Best(row[cfg.best_by], epoch, {k: v[r].copy() for k, v in weights.items()},
                            {f"val_{k}": v for k, v in val.items()})
        save_checkpoint(run.checkpoint, epoch, Snapshot(take(weights, r)),
                        Snapshot(take(opt_state, r)), strategy, run.rows, run.best)
        epoch_done(run, events)


def epoch_done(run: Run, events) -> None:
    """metrics.csv with every row so far, then the caller's event (as execute_run's)."""
    run.recorder.epoch(run.rows)
    if events is not None:
        events.epoch_done(run.cfg, run.rows[-1])


def drop(stack: Stack, optimizer: torch.optim.Optimizer, runs: list[Run], gone: list[Run],
         cfg: RunConfig) -> tuple[Stack, torch.optim.Optimizer, list[Run]]:
    """The stack, optimiser and runs without the runs `gone` (finished): their slices are
    cut out of every weight and optimiser-state tensor, so they no longer move."""
    if not gone:
        return stack, optimizer, runs
    keep = [i for i, run in enumerate(runs) if run not in gone]
    if not keep:
        return stack, optimizer, []
    state = take(optimizer.state_dict(), keep)
    stack = Stack({k: v.detach()[keep].requires_grad_() for k, v in stack.params.items()},
                  {k: v[keep] for k, v in stack.buffers.items()})
    optimizer = make_optimizer(stack, cfg)
    optimizer.load_state_dict(state)
    return stack, optimizer, [runs[i] for i in keep]


def finish(run: Run, status: str, diverged_at: dict | None, model: nn.Module, task: Task,
           device: torch.device, size: int) -> None:
    """summary.json of a run that ended, as `trainer.train` and `execute_run` write it: the
    test split evaluated once with the weights of its best epoch (loaded into `model`, the
    template of the stack, whose own weights the stack does not use); the checkpoint goes."""
    cfg, rows, best = run.cfg, run.rows, run.best
    started = time.perf_counter()
    summary: dict = {"status": status, "diverged_at": diverged_at, "best_by": cfg.best_by,
                     "best_epoch": best.epoch, "epochs_run": len(rows),
                     **flooding_summary(run.objective.flood_level, rows)}
    if best.state is not None:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in best.state.items()})
        test = evaluate(model, task.test, batch_size=cfg.eval_batch_size, device=device,
                        exclude_seen=cfg.exclude_seen)
        summary.update(best.val)
        summary.update({f"test_{k}": v for k, v in test.items()})
    if rows:
        last = rows[-1]
        summary.update({f"final_{k}": last[k] for k in
                        ("train_loss", "val_loss", "val_acc", "val_hr10", "val_ndcg10")})
    summary["wall_seconds"] = run.seconds + time.perf_counter() - started
    summary = {"strategy": cfg.strategy, "b": cfg.b, "seed": cfg.seed, **summary,
               "fused": size}
    run.recorder.finish(summary)
    run.checkpoint.unlink(missing_ok=True)
    run.result = (summary, rows)
