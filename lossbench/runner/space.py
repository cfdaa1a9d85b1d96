"""What a tune searches: each arm's dimensions, their ranges, and the values a sampler may draw.

    overrides = parse_space(["b=0.6:1.0:rel", "w=0.1,0.3,1"])      # --space, checked
    dims = arm_dimensions(base, "reweight-flood", tuned=["lr"], overrides=overrides, fixed=set())
    dims = [d.resolved(reference) for d in dims]                    # relative ranges made absolute

An arm's space is, in this order:

1. the shared settings tuned for every arm (`--tune lr`, default lr), each over its range in
   SETTING_SEARCH (or `--space`); tuned per arm, as Kurin et al. (NeurIPS 2022) tuned each
   method's learning rate;
2. the strategy's registered parameters that declare a tuning range (`Param.search`), or
   that `--space` names; a parameter fixed with its own option (`--alpha 0.3`) is left out;
3. for a flooded strategy, the flood level b, by default FLOOD_SEARCH: 0.5x..1.1x the no-flood
   baseline's training loss at its best validation epoch (the span of sweep-b's default grid).

A relative range (`:rel`) is in multiples of a reference: the flood level's is the baseline's
training loss (L_main alone for example flooding, whose level is one example's), a setting's
or parameter's is its configured value. Values are drawn on a log scale where the range says
`log`, uniformly otherwise; ints stay ints; choices are categories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lossbench import strategies as registry
from lossbench.config import STRATEGY_KEYS, RunConfig, setting_params, setting_paths
from lossbench.errors import ConfigError
from lossbench.strategies import Param, Search

SETTING_SEARCH: dict[str, Search] = {
    "lr": Search(0.1, 2.0, log=True, relative=True),
    "weight_decay": Search(1e-6, 1e-2, log=True),
    "momentum": Search(0.5, 0.99),
    "dropout": Search(0.0, 0.5),
    "attn_dropout": Search(0.0, 0.5),
    "label_smoothing": Search(0.0, 0.3),
    "aux_tau_start": Search(0.1, 2.0, log=True),
    "aux_tau_end": Search(0.05, 1.0, log=True),
    "aux_mask_prob": Search(0.0, 0.5),
    "batch_size": Search(0.25, 4.0, log=True, relative=True),
    "lr_warmup": Search(0, 10),
}
"""Default ranges of the shared settings `--tune` knows: the learning rate from a tenth to
twice the configured one (on a log scale; above that SGD at the default rate diverges),
weight decay over four decades. Any other numeric setting can be tuned with a `--space`."""
FLOOD_SEARCH = Search(0.5, 1.1, relative=True)
"""The flood level's default range, in multiples of the no-flood baseline's training loss."""
UNTUNABLE = frozenset({*STRATEGY_KEYS, "device", "best_by", "eval_batch_size", "exclude_seen",
                       "epochs", "patience", "label_noise", "max_len", "train_stride"})
"""Settings `--tune` refuses besides the task's data settings: the strategy's own keys, the
evaluation protocol (what the score means) and the training length (early stopping picks
the best epoch of every trial already)."""
TASK_SECTION = "task"


@dataclass(frozen=True)
class Dimension:
    """One tuned value of an arm: its name, kind ("setting", "parameter" or "flood level"),
    the Param that checks its values, its search range, and the reference a relative range
    multiplies (None until resolved)."""

    name: str
    kind: str
    param: Param
    search: Search
    reference: float | None = None

    @property
    def type(self) -> type:
        return self.param.type

    def resolved(self, reference: float | None) -> Dimension:
        """This dimension with its reference set (a relative range needs one > 0), its
        bounds checked against the setting's valid range."""
        out = replace(self, reference=reference)
        if self.search.relative and not (reference is not None and reference > 0):
            raise ConfigError(f"'{self.name}' has a relative range but its reference value is "
                              f"{reference}: give an absolute range with --space "
                              f"{self.name}=LO:HI")
        for value in out.values_to_check():
            self.param.check(value, " (an end of its tuning range)")
        return out

    def bounds(self) -> tuple[float, float]:
        """[low, high] of a range, after multiplying a relative one by its reference."""
        scale = self.reference if self.search.relative else 1.0
        assert scale is not None, "resolve a relative dimension first"
        low, high = self.search.low * scale, self.search.high * scale
        if self.type is int:
            low, high = math.ceil(low - 1e-9), math.floor(high + 1e-9)
            if low >= high:
                raise ConfigError(f"the range of '{self.name}' holds fewer than two integers")
        return low, high

    def values_to_check(self) -> list[Any]:
        return list(self.search.choices) if self.search.choices else list(self.bounds())

    def distribution(self) -> Any:
        """The Optuna distribution a sampler draws this dimension from."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.search.choices:
            return CategoricalDistribution(list(self.search.choices))
        low, high = self.bounds()
        if self.type is int:
            return IntDistribution(int(low), int(high), log=self.search.log)
        return FloatDistribution(float(low), float(high), log=self.search.log)

    def grid(self, points: int) -> list[Any]:
        """`points` values spread over the range (evenly, or evenly in log), or every choice:
        the grid sampler's values of this dimension."""
        if self.search.choices:
            return list(self.search.choices)
        low, high = self.bounds()
        spread = np.geomspace if self.search.log else np.linspace
        values = spread(low, high, points).tolist()
        if self.type is int:
            return sorted({int(round(v)) for v in values})
        return [float(f"{v:.6g}") for v in values]

    def record(self) -> dict:
        """The dimension as tune.json lists it."""
        low, high = (None, None) if self.search.choices else self.bounds()
        text = self.search.text()
        if self.search.relative:
            text = f"{text} of {self.reference:.4g}"
        return {"name": self.name, "kind": self.kind, "type": self.type.__name__,
                "low": low, "high": high, "log": self.search.log,
                "choices": list(self.search.choices) or None,
                "relative_to": self.reference if self.search.relative else None,
                "range_text": text}


def parse_space(items: list[str]) -> dict[str, Search]:
    """`--space NAME=LO:HI[:log][:rel]` or `NAME=a,b,c` -> {name: Search}. Choices stay strings
    here (each arm's Param converts them). A malformed item, an empty or reversed range, or
    a log range that reaches 0 is a ConfigError."""
    out: dict[str, Search] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name or not value.strip():
            raise ConfigError(f"--space needs NAME=LO:HI[:log|:rel] or NAME=a,b,c, got '{item}'")
        if name in out:
            raise ConfigError(f"--space gives '{name}' twice")
        if ":" not in value:
            choices = tuple(c.strip() for c in value.split(",") if c.strip())
            if len(choices) < 2 or len(set(choices)) < len(choices):
                raise ConfigError(f"--space {name}: choices must be two or more distinct values, "
                                  f"got '{value}'")
            out[name] = Search(choices=choices)
            continue
        low_text, _, rest = value.partition(":")
        high_text, *flags = rest.split(":")
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise ConfigError(f"--space {name}: LO and HI must be numbers, got '{value}'") from None
        unknown = [f for f in flags if f not in ("log", "rel")]
        if unknown:
            raise ConfigError(f"--space {name}: unknown flag ':{unknown[0]}' (use :log, :rel)")
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ConfigError(f"--space {name}: the range {low:g}:{high:g} is empty or reversed "
                              "(need LO < HI)")
        if "log" in flags and low <= 0:
            raise ConfigError(f"--space {name}: a log range must stay above 0, got "
                              f"{low:g}:{high:g}")
        out[name] = Search(low, high, log="log" in flags, relative="rel" in flags)
    return out


def typed(search: Search, param: Param) -> Search:
    """`search` with its choices converted to the parameter's type (and checked)."""
    if not search.choices:
        return search
    return replace(search, choices=tuple(param.check(c, " (in --space)") for c in search.choices))


def tunable_setting(name: str) -> Param:
    """The Param of a shared setting that may be tuned; a ConfigError naming why otherwise."""
    params = setting_params()
    if name not in params:
        raise ConfigError(f"--tune {name}: no such setting")
    param = params[name]
    if name in UNTUNABLE or name in task_settings() or param.type not in (int, float):
        raise ConfigError(f"setting '{name}' cannot be tuned: --tune takes numeric settings of "
                          "the model, the losses, the optimiser and the batches (the data, the "
                          "evaluation and the strategy's own keys stay fixed)")
    return param


def task_settings() -> set[str]:
    """The flat keys of the task section (the data: never tuned, they change what is scored)."""
    return {k for k, path in setting_paths().items() if path[0] == TASK_SECTION}


def has_flood_level(strategy: str) -> bool:
    """Whether a strategy floods at one level b (batch flooding and iFlood); AdaFlood's
    levels are per example, from its auxiliary models, and it has no b to tune."""
    return registry.split_name(strategy)[1] in ("batch", "example")


def arm_dimensions(base: RunConfig, strategy: str, tuned: list[str],
                   overrides: dict[str, Search], fixed: set[str]) -> list[Dimension]:
    """The dimensions of one arm (module docstring), unresolved: relative ranges still wait
    for their reference. `tuned`: the shared settings; `overrides`: `--space`; `fixed`: the
    strategy parameters given with their own options (left out)."""
    dims = []
    for name in tuned:
        param = tunable_setting(name)
        search = overrides.get(name) or SETTING_SEARCH.get(name)
        if search is None:
            raise ConfigError(f"setting '{name}' has no default tuning range: give one with "
                              f"--space {name}=LO:HI")
        dims.append(Dimension(name, "setting", param, typed(search, param)))
    for param in registry.strategy_params(strategy):
        search = overrides.get(param.name) or param.search
        if param.name in fixed or search is None:
            continue
        if param.type is str and not search.choices:
            raise ConfigError(f"--space {param.name}: a text parameter takes choices a,b,c")
        dims.append(Dimension(param.name, "parameter", param, typed(search, param)))
    if has_flood_level(strategy):
        level = Param("b", 0.0, "flood level", lo=0.0)
        dims.append(Dimension("b", "flood level", level, overrides.get("b") or FLOOD_SEARCH))
    return dims


def check_overrides(overrides: dict[str, Search], fixed: set[str], strategies: list[str],
                    tuned: list[str]) -> None:
    """Every `--space` name must be tuned by some arm: a tuned setting, a parameter of one of
    `strategies`, or b with a flooded strategy; a fixed parameter cannot have a range."""
    names = set(tuned)
    for strategy in strategies:
        names |= {p.name for p in registry.strategy_params(strategy)}
        names |= {"b"} if has_flood_level(strategy) else set()
    for name in overrides:
        if name in fixed:
            raise ConfigError(f"'{name}' is fixed by its option; it cannot also be tuned with "
                              "--space")
        if name not in names:
            raise ConfigError(f"--space {name}: no arm of this tune has a parameter '{name}' "
                              f"(tunable here: {', '.join(sorted(names)) or 'none'})")
