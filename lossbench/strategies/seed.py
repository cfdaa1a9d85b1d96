"""The source's formulas: plain, the EMA reweighting, and flooding (batch and per example).

Source: the blog post "loss reweight技术、flooding技术" that lossbench started from (its
reference code reweights as CBiT does, Du et al., CIKM 2022), and the flooding papers,
Ishida et al., ICML 2020 (batch flooding, `|L - b| + b` on the total) and Xie et al., ICLR
2022 (iFlood: the mean over examples of `|l_i - b| + b`).
"""

from __future__ import annotations

from torch import Tensor

from lossbench.strategies.base import Strategy
from lossbench.training.losses import LossTerm


def flood(loss: Tensor, b: float) -> Tensor:
    """Flooding: L~ = |L - b| + b.

    Above the flood level b this is L (ordinary descent); below b it is 2b - L, so the
    gradient flips sign and the training loss is pushed back up towards b. With b = 0 and
    L >= 0 it is exactly L. Applied elementwise it floods each example (iFlood)."""
    return (loss - b).abs() + b


def flood_examples(term: LossTerm, b: float) -> LossTerm:
    """iFlood on one loss: every example's value is flooded, l~_i = |l_i - b| + b, and the
    batch mean is taken over the flooded values (Xie et al., 2022, eq. 3)."""
    flooded = flood(term.per_example, b)
    return LossTerm(flooded, flooded.mean())


def reweight_theta(main: Tensor, aux: Tensor, theta_old: float, *, alpha: float, lam: float,
                   eps: float, detach: bool) -> Tensor:
    """theta_new = alpha * theta~ + (1 - alpha) * theta_old,
    theta~ = L_main / (L_main + lambda * L_aux + eps).

    theta~ keeps its autograd graph unless `detach` (then gradients flow only through the
    L_main and L_aux terms of the objective); theta_old is always a constant."""
    theta_tilde = main / (main + lam * aux + eps)
    if detach:
        theta_tilde = theta_tilde.detach()
    return alpha * theta_tilde + (1.0 - alpha) * theta_old


class Plain(Strategy):
    """L = L_main + L_aux."""

    citation = ("the unweighted sum (unitary scalarization): Kurin et al., In Defense of the "
                "Unitary Scalarization for Deep Multi-Task Learning, NeurIPS 2022")
    fusable = True

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        return main.mean + aux.mean


class Reweight(Strategy):
    """L = L_main + theta_{s+1} * L_aux, theta_{s+1} = alpha * theta~ + (1 - alpha) * theta_s,
    theta~ = L_main / (L_main + lambda * L_aux + eps); then theta_s <- theta_{s+1}, detached.

    `theta` (a float) is the only state; it starts at theta0 and moves once per call."""

    logs = ("theta",)
    citation = ("the dynamic loss reweighting of CBiT: Du et al., Contrastive Learning with "
                "Bidirectional Transformers for Sequential Recommendation, CIKM 2022")
    fusable = True

    def __init__(self, *, alpha: float, lam: float, theta0: float, detach_theta: bool,
                 eps: float) -> None:
        super().__init__()
        self.alpha, self.lam, self.eps, self.detach_theta = alpha, lam, eps, detach_theta
        self.theta = float(theta0)

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        theta_new = reweight_theta(main.mean, aux.mean, self.theta, alpha=self.alpha,
                                   lam=self.lam, eps=self.eps, detach=self.detach_theta)
        self.theta = float(theta_new.detach())
        return main.mean + theta_new * aux.mean
