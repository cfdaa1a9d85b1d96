"""One run's objective: a weighting and its flooding, called once per training step.

    objective = build_objective("reweight-flood", {"alpha": 0.1, ...}, b=4.8)
    step = objective(losses.main, losses.aux)   # step.objective is what is minimised

Where flooding acts:

- `none`: nowhere; `L = w(L_main, L_aux)`.
- `batch` (`X-flood`), by `target` (the setting `flood_target`): `total` floods the weighted
  total, `|w(L_main, L_aux) - b| + b`; `main` floods L_main before the weighting combines it,
  `w(|L_main - b| + b, L_aux)`; `aux` floods L_aux alone, `w(L_main, |L_aux - b| + b)`
  (`flood_one`).
- `example` (`X-iflood`): every L_main example at b, `|l_i - b| + b`, before the weighting.
- `adaflood` (`X-adaflood`): every L_main example at its own level theta_i, from its held-out
  loss (`heldout`, one per example, given with each call) and gamma (`adaflood_level`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lossbench.errors import ConfigError
from lossbench.strategies.base import LossTerm, Strategy, as_term
from lossbench.strategies.flooding import adaflood_level, flood, flood_examples
from lossbench.strategies.names import (
    FLOOD_TARGETS,
    PER_EXAMPLE,
    flood_target_error,
    split_name,
)
from lossbench.strategies.registry import entry, run_params


class Step(NamedTuple):
    """One training step's numbers: `total` the weighted total before batch flooding of the
    total, `objective` what is minimised, `below` the fraction flooded (batch: 1 when what
    floods was below b; per example: the fraction of L_main's examples below their level; 0
    without flooding), and `main`, `aux` the two terms the weighting saw (after the flooding
    that acts before it)."""

    total: Tensor
    objective: Tensor
    below: Tensor
    main: LossTerm
    aux: LossTerm


def flood_one(term: LossTerm, b: float) -> LossTerm:
    """Batch flooding of one loss before the weighting (`flood_target` main or aux): its mean
    becomes |L - b| + b; its examples follow the mean's side of b (l_i above it, 2b - l_i
    below), so they still average to the flooded mean."""
    sign = torch.where(term.mean.detach() >= b, 1.0, -1.0)
    return LossTerm(sign * (term.per_example - b) + b, flood(term.mean, b))


@dataclass
class Objective:
    """A weighting and its flooding for one run: `objective(main, aux) -> Step`.

    `weighting` is the Strategy module (its learnable parameters, state, logs); `flooding` is
    `none`, `batch`, `example` or `adaflood`; `b` the flood level (batch, example); `target`
    what batch flooding floods (`total`, `main`, `aux`); `gamma` AdaFlood's correction. The
    trainer calls it once per step, with the batch's held-out losses under AdaFlood
    (`heldout`). It also accepts bare tensors (scalars or per-example vectors) for a quick
    try: `build_strategy("flood", b=2.0)(torch.tensor(3.0), torch.tensor(1.0))`."""

    weighting: Strategy
    flooding: str = "none"
    b: float = 0.0
    target: str = "total"
    gamma: float = 0.5

    def __post_init__(self) -> None:
        self.raw_total: Tensor | float = float("nan")
        if self.target not in FLOOD_TARGETS:
            raise ConfigError(f"unknown flood_target '{self.target}'; choose one of: "
                              f"{', '.join(FLOOD_TARGETS)}")
        if self.target != "total" and self.flooding in PER_EXAMPLE:
            raise ConfigError(flood_target_error(self.target, self.flooding))

    @property
    def flood_level(self) -> float | None:
        """b when the run floods at one level, None otherwise (no flooding, AdaFlood's
        levels per example; b = 0 floods nothing: |L - 0| + 0 = L)."""
        return self.b if self.flooding not in ("none", "adaflood") else None

    @property
    def theta(self) -> float:
        """θ of a reweighting weighting, 1.0 for every other (the metrics.csv column)."""
        return float(getattr(self.weighting, "theta", 1.0))

    def __call__(self, main: LossTerm | Tensor, aux: LossTerm | Tensor,
                 heldout: Tensor | None = None) -> Step:
        main = main if isinstance(main, LossTerm) else as_term(main)
        aux = aux if isinstance(aux, LossTerm) else as_term(aux)
        main, aux, below = self.before_weighting(main, aux, heldout)
        total = self.weighting(main, aux)
        objective = total
        if self.flooding == "batch" and self.target == "total":
            below = (total.detach().double() < self.b).float()  # b compared as a double
            objective = flood(total, self.b)
        self.raw_total = total.detach()
        return Step(total, objective, below, main, aux)

    def before_weighting(self, main: LossTerm, aux: LossTerm, heldout: Tensor | None
                         ) -> tuple[LossTerm, LossTerm, Tensor]:
        """(main, aux, below): the two terms with the flooding that acts before the
        weighting (per example; batch flooding of L_main or L_aux alone), and the fraction
        flooded there (0 when none acts there)."""
        below = torch.zeros((), device=main.mean.device)
        if self.flooding == "example":
            below = (main.per_example.detach().double() < self.b).float().mean()
            main = flood_examples(main, self.b)
        elif self.flooding == "adaflood":
            levels = self.levels(main, heldout)
            below = (main.per_example.detach() < levels).float().mean()
            main = flood_examples(main, levels)
        elif self.flooding == "batch" and self.target != "total":
            term = main if self.target == "main" else aux
            below = (term.mean.detach().double() < self.b).float()
            flooded = flood_one(term, self.b)
            main, aux = (flooded, aux) if self.target == "main" else (main, flooded)
        return main, aux, below

    def levels(self, main: LossTerm, heldout: Tensor | None) -> Tensor:
        """AdaFlood's level of each of the batch's L_main examples, from their held-out
        losses (`adaflood_level`)."""
        if heldout is None:
            raise ValueError("AdaFlood needs the batch's held-out losses: objective(main, aux, "
                             "heldout=...), one per L_main example")
        if heldout.shape != main.per_example.shape:
            raise ValueError(f"heldout has shape {tuple(heldout.shape)}, L_main's examples "
                             f"{tuple(main.per_example.shape)}")
        return adaflood_level(heldout.to(main.per_example.dtype), self.gamma)

    def after_step(self, main: LossTerm, aux: LossTerm, heldout: Tensor | None = None) -> None:
        """The step's batch's losses after the step (`Strategy.after_step`), flooded before
        the weighting as the weighting saw them in the step."""
        main, aux, _ = self.before_weighting(main, aux, heldout)
        self.weighting.after_step(main, aux)


def build_objective(name: str, params: dict[str, Any], b: float = 0.0,
                    target: str = "total") -> Objective:
    """A fresh Objective (fresh state) for one run of strategy `name` with the parameters
    `params` (the weighting's and its flooding's; missing ones take their defaults), flood
    level `b` and flood target `target` (batch flooding)."""
    weighting, flooding = split_name(name)
    cls = entry(weighting).load()
    values = run_params(name, params)
    own = {p.name: values[p.name] for p in entry(weighting).params}
    try:
        strategy = cls(**own)
    except TypeError as exc:
        raise ConfigError(f"strategy '{weighting}' cannot be built from its parameters "
                          f"({', '.join(own) or 'none'}): {exc}") from None
    return Objective(strategy, flooding, float(b) if flooding in ("batch", "example") else 0.0,
                     target, float(values.get("adaflood_gamma", 0.5)))


def build_strategy(name: str, *, b: float = 0.0, flood_target: str = "total",
                   **params: Any) -> Objective:
    """`build_objective` with keyword parameters, for the Python API and quick tries:

        s = build_strategy("reweight-flood", alpha=0.1, lam=5.0, b=0.1)
        step = s(main_loss, aux_loss)        # step.objective; s.theta is θ
        a = build_strategy("adaflood", adaflood_gamma=0.5)
        step = a(main_loss, aux_loss, heldout=heldout_losses)   # one per L_main example

    Parameters that the strategy does not declare are refused; b must be >= 0."""
    if b < 0:
        raise ConfigError(f"b must be >= 0, got {b}")
    declared = set(run_params(name, {}))
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ConfigError(f"strategy '{name}' has no parameter {', '.join(unknown)}; it has: "
                          f"{', '.join(sorted(declared)) or 'none'}")
    return build_objective(name, params, b, flood_target)
