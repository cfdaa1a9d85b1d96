"""The stacked model of fused training (fused.py): R runs' weights as one set of tensors
[R, ...], their losses in one vmapped forward, their metrics in one vmapped evaluation.

    stack = stack_states(model, [state_dict_0, ..., state_dict_R-1])
    losses = stacked_losses(Wrapper(model, cfg.losses), stack, inputs, targets, epoch, generator)
    metrics = evaluate_stacked(wrapper, stack, task.val, batch_size=2048, device=device)

Slice r of every tensor is run r's; `take` cuts runs out again (`stack_optimizer_states`
is its inverse for optimiser state).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from lossbench.config import LossesConfig
from lossbench.strategies.base import LossTerm
from lossbench.tasks import Split
from lossbench.training.losses import compute_losses
from lossbench.training.metrics import METRIC_NAMES, ranking_metrics, target_ranks


@dataclass
class Stack:
    """R models' weights by the model's names, one tensor [R, ...] each: parameters (leaves
    the optimiser updates; `parameters()` makes a Stack a model for `make_optimizer`) and
    buffers. Slice r is run r's."""

    params: dict[str, Tensor]
    buffers: dict[str, Tensor]

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def prefixed(self) -> dict[str, Tensor]:
        """The weights as `functional_call` on a `Wrapper` wants them."""
        return {f"model.{k}": v for k, v in (self.params | self.buffers).items()}


def stack_states(model: nn.Module, states: list[dict]) -> Stack:
    """A Stack from R state dicts of `model`'s architecture (`stack_module_state` for state
    dicts)."""
    def stacked(name: str) -> Tensor:
        return torch.stack([s[name] for s in states]).detach()

    return Stack({n: stacked(n).requires_grad_() for n, _ in model.named_parameters()},
                 {n: stacked(n) for n, _ in model.named_buffers()})


def take(obj, index: int | list[int]):
    """Slice `index` (an int: one run's; a list: a smaller stack) of every stacked tensor or
    array (dim > 0) in nested dicts (state dicts, optimiser state dicts); anything else, such
    as Adam's 0-d step and the hyperparameters, unchanged."""
    if isinstance(obj, Tensor | np.ndarray) and obj.ndim > 0:
        return obj[index]
    if isinstance(obj, dict):
        return {k: take(v, index) for k, v in obj.items()}
    return obj


def stack_optimizer_states(states: list[dict]) -> dict:
    """R one-model optimiser state dicts -> the stacked optimiser's (`take`'s inverse)."""
    def stacked(i: int, key: str, value):
        if not (isinstance(value, Tensor) and value.ndim > 0):
            return value
        return torch.stack([s["state"][i][key] for s in states])

    return {"state": {i: {k: stacked(i, k, v) for k, v in per_param.items()}
                      for i, per_param in states[0]["state"].items()},
            "param_groups": states[0]["param_groups"]}


class Wrapper(nn.Module):
    """What `functional_call` calls: with targets, `compute_losses` of the wrapped model as
    four tensors (L_main per example and mean, L_aux per anchor and mean); without, the
    float32 scores at the last position, as `metrics.evaluate` computes them."""

    def __init__(self, model: nn.Module, cfg: LossesConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, inputs: Tensor, targets: Tensor | None = None, epoch: int = 0,
                generator: torch.Generator | None = None) -> tuple[Tensor, ...] | Tensor:
        if targets is None:
            return self.model.logits(self.model(inputs)[:, -1]).float()
        losses = compute_losses(self.model, inputs, targets, self.cfg, epoch, generator)
        return (*losses.main, *losses.aux)


@contextmanager
def attention_backend(device: torch.device) -> Iterator[None]:
    """Attention in the fused forward (module docstring): PyTorch's math backend on CUDA;
    on the CPU the usual kernel, run once per run (its "performance drop" warning muted)."""
    if device.type != "cuda":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="There is a performance drop")
            yield
        return
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backend = sdpa_kernel([SDPBackend.MATH])
    except ImportError:  # torch 2.2
        backend = torch.backends.cuda.sdp_kernel(enable_flash=False, enable_mem_efficient=False)
    with backend:
        yield


def stacked_losses(wrapper: Wrapper, stack: Stack, inputs: Tensor, targets: Tensor,
                   epoch: int, generator: torch.Generator) -> list[tuple[LossTerm, LossTerm]]:
    """(L_main, L_aux) of every run on one batch, in one vmapped pass; the random draws
    (augmented view, dropout) happen once and are shared, as the unfused runs draw them."""
    def one(weights: dict[str, Tensor]) -> tuple[Tensor, ...]:
        return functional_call(wrapper, weights, (inputs, targets, epoch, generator))

    with attention_backend(inputs.device):
        main, main_mean, aux, aux_mean = vmap(one, randomness="same")(stack.prefixed())
    return [(LossTerm(main[r], main_mean[r]), LossTerm(aux[r], aux_mean[r]))
            for r in range(main.shape[0])]


@torch.inference_mode()
def evaluate_stacked(wrapper: Wrapper, stack: Stack, split: Split, *, batch_size: int,
                     device: torch.device, exclude_seen: bool = False) -> list[dict]:
    """`metrics.evaluate` of every run of the stack (a dict per run): per batch one vmapped
    forward, the metrics of the R score matrices as one batch of R * n rows, one read."""
    wrapper.eval()
    n_runs = len(next(iter(stack.params.values())))
    sums = np.zeros((n_runs, len(METRIC_NAMES)))
    for start in range(0, len(split), batch_size):
        inputs = split.inputs[start:start + batch_size].to(device, non_blocking=True)
        targets = split.targets[start:start + batch_size].to(device, non_blocking=True)
        with attention_backend(device):
            scores = vmap(lambda w, x: functional_call(wrapper, w, (x,)),
                          in_dims=(0, None))(stack.prefixed(), inputs)
        n = len(targets)
        scores, targets = scores.reshape(n_runs * n, -1), targets.repeat(n_runs)
        loss = F.cross_entropy(scores, targets, reduction="none")
        if exclude_seen:
            scores = scores.scatter(1, inputs.repeat(n_runs, 1), -math.inf)
        metrics = ranking_metrics(*target_ranks(scores, targets))
        values = torch.stack([loss, *(metrics[m] for m in METRIC_NAMES[1:])])
        sums += np.array(values.view(-1, n_runs, n).sum(2).T.tolist())  # float32 sums
    wrapper.train()
    return [dict(zip(METRIC_NAMES, (row / len(split)).tolist(), strict=True)) for row in sums]
