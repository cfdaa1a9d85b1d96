"""How L_main and L_aux become one objective: the strategies, their registry and flooding.

    s = build_strategy("reweight-flood", alpha=0.1, lam=5.0, b=0.1)
    step = s(main_loss, aux_loss)        # step.objective is minimised; s.theta is θ

The package, one module per job:

- `param.py`: `Param`, a strategy parameter (type, default, range, doc, tuning range
  `Search`) and its value check.
- `catalog.py`: the registry's `Entry` and the built-in weightings' entries.
- `names.py`: the name grammar, weighting + flooding suffix (`reweight-flood`, `dwa-iflood`,
  `reweight-adaflood`).
- `registry.py`: which weightings exist (built-ins, plugins), their parameters, groups.
- `base.py`: the contract a plugin implements: `Strategy`, and `LossTerm`, what it is given.
- `objective.py`: one run's objective, a weighting and its flooding (`build_objective`).
- `baselines.py`, `reweighting.py`, `adaptive.py` (RLW, GradNorm, FAMO), `gradient.py`,
  `flooding.py`: the formulas, by family.

The registry's names are imported here as they are. The torch-backed names (`Strategy`,
`LossTerm`, `build_strategy`, the formulas) are imported on first use (PEP 562 `__getattr__`):
importing the registry, as `lossbench --help` and config checks do, must not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from lossbench.strategies.names import FLOOD_SUFFIX, join_name, no_flood_baseline, split_name
from lossbench.strategies.param import Param, Search
from lossbench.strategies.registry import (
    GROUPS,
    REGISTRY,
    all_params,
    canonical,
    describe,
    entry,
    expand,
    flood_level,
    known_names,
    order_key,
    owners,
    register,
    run_params,
    strategy_params,
    weighting_class,
)

TORCH_NAMES = {
    "Strategy": "lossbench.strategies.base",
    "LossTerm": "lossbench.strategies.base",
    "Objective": "lossbench.strategies.objective",
    "Step": "lossbench.strategies.objective",
    "build_objective": "lossbench.strategies.objective",
    "build_strategy": "lossbench.strategies.objective",
    "flood": "lossbench.strategies.flooding",
    "flood_examples": "lossbench.strategies.flooding",
    "adaflood_level": "lossbench.strategies.flooding",
    "flood_one": "lossbench.strategies.objective",
    "reweight_theta": "lossbench.strategies.reweighting",
}
"""Public names that need torch -> the module that defines them."""

__all__ = ["FLOOD_SUFFIX", "GROUPS", "REGISTRY", "Param", "Search", "all_params", "canonical",
           "describe", "entry", "expand", "flood_level", "join_name", "known_names",
           "no_flood_baseline", "order_key", "owners", "register", "run_params", "split_name",
           "strategy_params", "weighting_class",
           *TORCH_NAMES]


def __getattr__(name: str) -> Any:
    """`lossbench.strategies.Strategy` and the other TORCH_NAMES, imported on first use."""
    if name in TORCH_NAMES:
        return getattr(importlib.import_module(TORCH_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
