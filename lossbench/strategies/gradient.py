"""Gradient-combining strategies: they see the gradients of L_main and L_aux with respect to
the model's (shared) parameters and decide the update direction. The trainer does the two
backward passes (see `Strategy.needs_grads`); `forward` only gives the value that is logged
(L_main + L_aux) and flooded (below b the combined gradient flips sign).

GCS and PCGrad treat the parameters they are given as one vector g = concat(grad of every
parameter); MetaBalance works per parameter tensor. By default the trainer gives every model
parameter, with a zero gradient from a loss that does not reach it; with the setting
`shared_only`, only those both losses reach (training/trainer.py, train_step).
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


class MetaBalance(GradientStrategy):
    """MetaBalance (He, Feng, Cheng, Ji, Guo & Caverlee, WWW 2022, Algorithm 1), as its
    reference code (github.com/facebookresearch/MetaBalance, metabalance.py) per parameter
    tensor ("for each part of the network"): for every tensor p, moving averages of the
    gradient norms, zero at the start,

        m_main(p) <- beta m_main(p) + (1 - beta) ||g_main(p)||      (same for m_aux)

    and the auxiliary gradient moved towards the main one's magnitude by the relax factor r:

        g_aux(p) <- g_aux(p) (m_main(p) / m_aux(p)) r + g_aux(p) (1 - r)
        g(p) = g_main(p) + g_aux(p)

    applied where ||g_aux(p)|| > ||g_main(p)|| (`mb_variant` reduce: the paper's strategy A),
    where it is smaller (enlarge, B) or always (both, C: the reference code, which applies
    it unconditionally). A tensor L_aux does not reach (m_aux = 0) keeps g_main. Logs the
    epoch means of the factor applied to g_aux (mean over tensors) and of the fraction of
    tensors adapted."""

    logs = ("aux_scale", "adapted")
    citation = ("He, Feng, Cheng, Ji, Guo & Caverlee, MetaBalance: Improving Multi-Task "
                "Recommendations via Adapting Gradient Magnitudes of Auxiliary Tasks, WWW "
                "2022; reference code github.com/facebookresearch/MetaBalance")

    def __init__(self, *, mb_beta: float, mb_relax: float, mb_variant: str) -> None:
        super().__init__()
        self.beta, self.relax, self.variant = mb_beta, mb_relax, mb_variant
        self.m_main: Tensor | None = None  # per tensor, the order of combine_grads' lists
        self.m_aux: Tensor | None = None

    def combine_grads(self, g_main: list[Tensor], g_aux: list[Tensor]) -> list[Tensor]:
        n_main = torch.stack([g.norm() for g in g_main])
        n_aux = torch.stack([g.norm() for g in g_aux])
        if self.m_main is None or self.m_main.shape != n_main.shape:
            self.m_main, self.m_aux = torch.zeros_like(n_main), torch.zeros_like(n_aux)
        self.m_main = self.beta * self.m_main.to(n_main) + (1 - self.beta) * n_main
        self.m_aux = self.beta * self.m_aux.to(n_aux) + (1 - self.beta) * n_aux
        reached = self.m_aux > 0
        ratio = self.m_main / torch.where(reached, self.m_aux, torch.ones_like(self.m_aux))
        if self.variant == "reduce":
            adapt = n_aux > n_main
        elif self.variant == "enlarge":
            adapt = n_aux < n_main
        else:
            adapt = torch.ones_like(reached)
        adapt = adapt & reached
        scale = torch.where(adapt, ratio * self.relax + (1 - self.relax),
                            torch.ones_like(ratio))
        self.record(aux_scale=scale.mean(), adapted=adapt.float().mean())
        return [m + s * a for m, s, a in zip(g_main, scale.unbind(), g_aux, strict=True)]
