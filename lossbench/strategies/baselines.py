"""Loss-weighting baselines from the multi-task literature, for two losses (main, aux): the
plain sum, a fixed weight, uncertainty weighting and DWA.

Each follows LibMTL's implementation (Lin & Zhang, `LibMTL/weighting/`), with the main and
the auxiliary loss as the two tasks; the formula is in each docstring.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lossbench.strategies.base import LossTerm, Strategy


class Plain(Strategy):
    """L = L_main + L_aux."""

    citation = ("the unweighted sum (unitary scalarization): Kurin et al., In Defense of the "
                "Unitary Scalarization for Deep Multi-Task Learning, NeurIPS 2022")
    fusable = True

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        return main.mean + aux.mean


class Weighted(Strategy):
    """L = L_main + w * L_aux with a fixed w: tuned scalarisation, the baseline that Kurin et
    al. (NeurIPS 2022) and Xin et al. (NeurIPS 2022) found hard to beat. Tune w on validation
    with `lossbench sweep --param w`."""

    citation = ("Kurin et al., In Defense of the Unitary Scalarization for Deep Multi-Task "
                "Learning, NeurIPS 2022; Xin et al., Do Current Multi-Task Optimization "
                "Methods in Deep Learning Even Help?, NeurIPS 2022")
    fusable = True

    def __init__(self, *, w: float) -> None:
        super().__init__()
        self.w = w

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        return main.mean + self.w * aux.mean


class Uncertainty(Strategy):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), in LibMTL's
    form (`weighting/UW.py`), with learnable log-variances s = (s_main, s_aux):

        L = L_main / (2 exp(s_main)) + s_main / 2 + L_aux / (2 exp(s_aux)) + s_aux / 2

    so the weight of loss k is 1 / (2 exp(s_k)). s starts at `log_var0` (LibMTL: -0.5, i.e.
    weights 0.82) and is trained by the run's optimiser with the model."""

    logs = ("s_main", "s_aux", "w_main", "w_aux")
    citation = ("Kendall, Gal & Cipolla, Multi-Task Learning Using Uncertainty to Weigh "
                "Losses, CVPR 2018; LibMTL's UW")

    def __init__(self, *, log_var0: float) -> None:
        super().__init__()
        self.log_var = nn.Parameter(torch.full((2,), float(log_var0)))

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        losses = torch.stack([main.mean, aux.mean])
        return (losses / (2 * self.log_var.exp()) + self.log_var / 2).sum()

    def log_state(self) -> dict[str, float]:
        s_main, s_aux = self.log_var.detach().cpu().tolist()
        return {"s_main": s_main, "s_aux": s_aux, "w_main": 0.5 * math.exp(-s_main),
                "w_aux": 0.5 * math.exp(-s_aux)}


class DWA(Strategy):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019), as LibMTL's `weighting/DWA.py`:

        r_k = L_k(t - 1) / L_k(t - 2),   w_k = K exp(r_k / T) / sum_j exp(r_j / T),   K = 2,
        L = w_main * L_main + w_aux * L_aux,

    L_k(t) the mean of loss k over epoch t; equal weights (1, 1) in the first two epochs. A
    loss whose earlier mean is 0 (L_aux with --aux none) has ratio 1."""

    logs = ("w_main", "w_aux")
    citation = "Liu, Johns & Davison, End-to-End Multi-Task Learning with Attention, CVPR 2019"
    fusable = True

    def __init__(self, *, dwa_temp: float) -> None:
        super().__init__()
        self.temperature = dwa_temp
        self.history: list[tuple[float, float]] = []  # epoch means (main, aux)
        self.w_main, self.w_aux = 1.0, 1.0

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        return self.w_main * main.mean + self.w_aux * aux.mean

    def end_epoch(self, means: dict[str, float]) -> None:
        """Store this epoch's means and set the weights for the next epoch."""
        self.history.append((means["main"], means["aux"]))
        if len(self.history) >= 2:
            (m2, a2), (m1, a1) = self.history[-2:]
            ratios = [m1 / m2 if m2 > 0 else 1.0, a1 / a2 if a2 > 0 else 1.0]
            self.w_main, self.w_aux = dwa_weights(ratios, self.temperature)


def dwa_weights(ratios: list[float], temperature: float) -> tuple[float, float]:
    """K softmax(r / T) for K = 2 losses (max-shifted for stability)."""
    scaled = [r / temperature for r in ratios]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    return tuple(len(exps) * e / sum(exps) for e in exps)  # type: ignore[return-value]
