"""The EMA loss reweighting of the blog post "loss reweight技术、flooding技术" that lossbench
started from; its reference code reweights as CBiT does (Du et al., CIKM 2022).
"""

from __future__ import annotations

from torch import Tensor

from lossbench.strategies.base import LossTerm, Strategy


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
