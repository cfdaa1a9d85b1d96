"""How the main and the auxiliary loss become the one objective that is minimised.

This is the only module that combines losses. Each strategy takes two scalar tensors (batch
means) and returns the scalar objective; the formulas follow the seed text
(`shared/seed/000_5259639a52d054d3.txt`) and the flooding paper (Ishida et al., 2020).

    s = build_strategy("reweight-flood", alpha=0.1, lam=5.0, theta0=0.0, b=0.1)
    total = s(main_loss, aux_loss)     # theta evolves once per call = once per training step
    s.theta                            # current theta as a float (1.0 without reweighting)
    s.raw_total                        # the last total before flooding (detached tensor)
"""

from __future__ import annotations

from torch import Tensor


def flood(loss: Tensor, b: float) -> Tensor:
    """Flooding: L~ = |L - b| + b.

    Above the flood level b this is L (ordinary descent); below b it is 2b - L, so the
    gradient flips sign and the training loss is pushed back up towards b. With b = 0 and
    L >= 0 it is exactly L.
    """
    return (loss - b).abs() + b


def reweight_theta(main: Tensor, aux: Tensor, theta_old: float, *, alpha: float, lam: float,
                   eps: float, detach: bool) -> Tensor:
    """theta_new = alpha * theta~ + (1 - alpha) * theta_old,
    theta~ = L_main / (L_main + lambda * L_aux + eps).

    theta~ keeps its autograd graph unless `detach` (then gradients flow only through the
    L_main and L_aux terms of the objective); theta_old is always a constant.
    """
    theta_tilde = main / (main + lam * aux + eps)
    if detach:
        theta_tilde = theta_tilde.detach()
    return alpha * theta_tilde + (1.0 - alpha) * theta_old


class Plain:
    """L = L_main + L_aux."""

    theta = 1.0
    flood_level: float | None = None

    def __init__(self) -> None:
        self.raw_total: Tensor | float = float("nan")

    def __call__(self, main: Tensor, aux: Tensor) -> Tensor:
        total = main + aux
        self.raw_total = total.detach()  # kept on the device: reading it would wait for the GPU
        return total


class Flood(Plain):
    """L~ = |L - b| + b with L = L_main + L_aux."""

    def __init__(self, b: float) -> None:
        super().__init__()
        self.flood_level = b

    def __call__(self, main: Tensor, aux: Tensor) -> Tensor:
        return flood(super().__call__(main, aux), self.flood_level)


class Reweight:
    """L = L_main + theta_{s+1} * L_aux, theta_{s+1} = alpha * theta~ + (1 - alpha) * theta_s,
    theta~ = L_main / (L_main + lambda * L_aux + eps); then theta_s <- theta_{s+1}, detached.

    `theta` (a float) is the only state; it starts at theta0 and moves once per call.
    """

    flood_level: float | None = None

    def __init__(self, *, alpha: float, lam: float, theta0: float, eps: float = 1e-12,
                 detach_theta: bool = False) -> None:
        self.alpha, self.lam, self.eps, self.detach_theta = alpha, lam, eps, detach_theta
        self.theta = float(theta0)
        self.raw_total: Tensor | float = float("nan")

    def __call__(self, main: Tensor, aux: Tensor) -> Tensor:
        theta_new = reweight_theta(main, aux, self.theta, alpha=self.alpha, lam=self.lam,
                                   eps=self.eps, detach=self.detach_theta)
        self.theta = float(theta_new.detach())
        total = main + theta_new * aux
        self.raw_total = total.detach()
        return total


class ReweightFlood(Reweight):
    """L~ = |L - b| + b with L the reweighted total L_main + theta_{s+1} * L_aux."""

    def __init__(self, *, b: float, **reweight_args) -> None:
        super().__init__(**reweight_args)
        self.flood_level = b

    def __call__(self, main: Tensor, aux: Tensor) -> Tensor:
        return flood(super().__call__(main, aux), self.flood_level)


Strategy = Plain | Flood | Reweight | ReweightFlood



def build_strategy(name: str, *, alpha: float = 0.1, lam: float = 5.0, theta0: float = 0.0,
                   b: float = 0.0, detach_theta: bool = False, eps: float = 1e-12) -> Strategy:
    """A fresh strategy object (fresh theta) for one run. Unused parameters are ignored."""
    from lossbench.config import RunConfig, validate

    validate(RunConfig(strategy=name, alpha=alpha, lam=lam, theta0=theta0, b=b, eps=eps,
                       detach_theta=detach_theta))
    if name == "plain":
        return Plain()
    if name == "flood":
        return Flood(b)
    reweight_args = {"alpha": alpha, "lam": lam, "theta0": theta0, "eps": eps,
                     "detach_theta": detach_theta}
    if name == "reweight":
        return Reweight(**reweight_args)
    return ReweightFlood(b=b, **reweight_args)
