"""Gradient-combining strategies: they see the gradients of L_main and L_aux with respect to
the model's (shared) parameters and decide the update direction. The trainer does the two
backward passes (see `Strategy.needs_grads`); `forward` only gives the value that is logged
(L_main + L_aux) and flooded (below b the combined gradient flips sign).

Both treat all model parameters as one shared vector g = concat(grad of every parameter);
parameters that L_aux does not reach have a zero auxiliary gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.strategies.base import LossTerm, Strategy


def flatten(grads: list[Tensor]) -> Tensor:
    """One vector from per-parameter gradients."""
    return torch.cat([g.reshape(-1) for g in grads])


def unflatten(vector: Tensor, like: list[Tensor]) -> list[Tensor]:
    """Per-parameter tensors shaped like `like` from one vector (inverse of `flatten`)."""
    out, start = [], 0
    for g in like:
        out.append(vector[start:start + g.numel()].view_as(g))
        start += g.numel()
    return out


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """cos(a, b) = a.b / (|a| |b|), 0 when either vector is 0."""
    norms = a.norm() * b.norm()
    return torch.where(norms > 0, a @ b / norms.clamp_min(1e-30), torch.zeros_like(norms))


class GradientStrategy(Strategy):
    """Shared parts: the logged value L_main + L_aux and per-epoch means of step statistics
    (kept on the device, read once per epoch)."""

    needs_grads = True

    def __init__(self) -> None:
        super().__init__()
        self._sums: dict[str, Tensor] = {}
        self._steps = 0

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        return main.mean + aux.mean

    def record(self, **values: Tensor) -> None:
        """Add one step's statistics (0-d tensors) to the epoch sums."""
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value.detach().float()
        self._steps += 1 if values else 0

    def log_state(self) -> dict[str, float]:
        steps = max(self._steps, 1)
        return {key: float(self._sums[key]) / steps if key in self._sums else float("nan")
                for key in self.logs}

    def end_epoch(self, means: dict[str, float]) -> None:
        self._sums, self._steps = {}, 0


class GCS(GradientStrategy):
    """Auxiliary-gradient gating by cosine similarity (Du et al., 2018, "Adapting Auxiliary
    Losses Using Gradient Similarity", Algorithm 1):

        g = g_main + g_aux            if cos(g_main, g_aux) >= 0
        g = g_main                    otherwise

    or, with `gcs_weighted`, the paper's weighted variant g = g_main + max(0, cos) g_aux.
    Logs the epoch mean of the cosine and the fraction of steps that used g_aux."""

    logs = ("cos", "aux_used")
    citation = ("Du, Czarnecki, Jayakumar, Farajtabar, Pascanu & Lakshminarayanan, Adapting "
                "Auxiliary Losses Using Gradient Similarity, arXiv:1812.02224, 2018")

    def __init__(self, *, gcs_weighted: bool) -> None:
        super().__init__()
        self.weighted = gcs_weighted

    def combine_grads(self, g_main: list[Tensor], g_aux: list[Tensor]) -> list[Tensor]:
        main, aux = flatten(g_main), flatten(g_aux)
        cos = cosine(main, aux)
        weight = cos.clamp_min(0.0) if self.weighted else (cos >= 0).to(main.dtype)
        self.record(cos=cos, aux_used=(weight > 0).float())
        return unflatten(main + weight * aux, g_main)


class PCGrad(GradientStrategy):
    """Gradient surgery (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020, Algorithm 1)
    for two losses: each gradient that conflicts with the other (g_i . g_j < 0) is projected
    onto the other's normal plane, g_i <- g_i - (g_i . g_j / |g_j|^2) g_j (both against the
    original gradients), then g = g_main + g_aux. With two tasks the paper's random task order
    does not matter. Logs the epoch mean of the cosine and the fraction of conflicting steps."""

    logs = ("cos", "conflict")
    citation = ("Yu, Kumar, Gupta, Levine, Hausman & Finn, Gradient Surgery for Multi-Task "
                "Learning, NeurIPS 2020")

    def combine_grads(self, g_main: list[Tensor], g_aux: list[Tensor]) -> list[Tensor]:
        main, aux = flatten(g_main), flatten(g_aux)
        dot = main @ aux
        conflict = dot < 0
        main_pc = torch.where(conflict, main - dot / (aux @ aux).clamp_min(1e-30) * aux, main)
        aux_pc = torch.where(conflict, aux - dot / (main @ main).clamp_min(1e-30) * main, aux)
        self.record(cos=cosine(main, aux), conflict=conflict.float())
        return unflatten(main_pc + aux_pc, g_main)
