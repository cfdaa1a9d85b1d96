"""One run's objective: a weighting and its flooding, called once per training step.

    objective = build_objective("reweight-flood", {"alpha": 0.1, ...}, b=4.8)
    step = objective(losses.main, losses.aux)   # step.objective is what is minimised
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lossbench.errors import ConfigError
from lossbench.strategies.base import LossTerm, Strategy, as_term
from lossbench.strategies.flooding import flood, flood_examples
from lossbench.strategies.names import split_name
from lossbench.strategies.registry import entry, run_params


class Step(NamedTuple):
    """One training step's numbers: `total` the weighted total before batch flooding,
    `objective` what is minimised, `below` the fraction flooded (batch: 1 when the total was
    below b; example: the fraction of L_main's examples below b; 0 without flooding), and
    `main` the L_main term the weighting saw (after example flooding)."""

    total: Tensor
    objective: Tensor
    below: Tensor
    main: LossTerm


@dataclass
class Objective:
    """A weighting and its flooding for one run: `objective(main, aux) -> Step`.

    `weighting` is the Strategy module (its learnable parameters, state, logs); `flooding` is
    `none`, `batch` or `example`; `b` the flood level. The trainer calls it once per step.
    It also accepts bare tensors (scalars or per-example vectors) for a quick try:
    `build_strategy("flood", b=2.0)(torch.tensor(3.0), torch.tensor(1.0))`."""

    weighting: Strategy
    flooding: str = "none"
    b: float = 0.0

    def __post_init__(self) -> None:
        self.raw_total: Tensor | float = float("nan")

    @property
    def flood_level(self) -> float | None:
        """b when the run floods, None otherwise (b = 0 floods nothing: |L - 0| + 0 = L)."""
        return self.b if self.flooding != "none" else None

    @property
    def theta(self) -> float:
        """θ of a reweighting weighting, 1.0 for every other (the metrics.csv column)."""
        return float(getattr(self.weighting, "theta", 1.0))

    def __call__(self, main: LossTerm | Tensor, aux: LossTerm | Tensor) -> Step:
        main = main if isinstance(main, LossTerm) else as_term(main)
        aux = aux if isinstance(aux, LossTerm) else as_term(aux)
        below = torch.zeros((), device=main.mean.device)
        if self.flooding == "example":
            below = (main.per_example.detach().double() < self.b).float().mean()
            main = flood_examples(main, self.b)
        total = self.weighting(main, aux)
        objective = total
        if self.flooding == "batch":
            below = (total.detach().double() < self.b).float()  # b compared as a double
            objective = flood(total, self.b)
        self.raw_total = total.detach()
        return Step(total, objective, below, main)

    def after_step(self, main: LossTerm, aux: LossTerm) -> None:
        """The step's batch's losses after the step (`Strategy.after_step`), with L_main
        flooded per example as the weighting saw it in the step under example flooding."""
        if self.flooding == "example":
            main = flood_examples(main, self.b)
        self.weighting.after_step(main, aux)


def build_objective(name: str, params: dict[str, Any], b: float = 0.0) -> Objective:
    """A fresh Objective (fresh state) for one run of strategy `name` with the weighting's
    parameters `params` (missing ones take their defaults) and flood level `b`."""
    weighting, flooding = split_name(name)
    cls = entry(weighting).load()
    values = run_params(name, params)
    try:
        strategy = cls(**values)
    except TypeError as exc:
        raise ConfigError(f"strategy '{weighting}' cannot be built from its parameters "
                          f"({', '.join(values) or 'none'}): {exc}") from None
    return Objective(strategy, flooding, float(b) if flooding != "none" else 0.0)


def build_strategy(name: str, *, b: float = 0.0, **params: Any) -> Objective:
    """`build_objective` with keyword parameters, for the Python API and quick tries:

        s = build_strategy("reweight-flood", alpha=0.1, lam=5.0, b=0.1)
        step = s(main_loss, aux_loss)        # step.objective; s.theta is θ

    Parameters that the strategy does not declare are refused; b must be >= 0."""
    if b < 0:
        raise ConfigError(f"b must be >= 0, got {b}")
    declared = {p.name for p in entry(split_name(name)[0]).params}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ConfigError(f"strategy '{name}' has no parameter {', '.join(unknown)}; it has: "
                          f"{', '.join(sorted(declared)) or 'none'}")
    return build_objective(name, params, b)
