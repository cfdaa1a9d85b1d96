"""The one planner: strategies x seeds (x swept values) -> the run configs, nothing else.

    runs = plan_runs(base, ["all"], seeds=[0, 1, 2])                   # lossbench run
    baseline, grid = plan_sweep(base, "reweight-flood", "alpha", [0.05, 0.2], seeds=[0, 1])
    runs = plan_setting(base, "reweight-flood", {"lr": 0.3, "alpha": 0.2, "b": 4.1}, [0, 1])

Every command that trains (run, sweep, sweep-b, tune, and the Ray and fused paths, which
execute what they are given) gets its runs from here, and nothing else builds a run config: a run's
strategy name, seed, parameters and flood level are resolved in `run_config` alone.
"""

from __future__ import annotations

from typing import Any

from lossbench import strategies as registry
from lossbench.config import RunConfig, setting_paths, validate, with_settings


def run_config(base: RunConfig, strategy: str, seed: int,
               chosen: dict[str, Any] | None = None) -> RunConfig:
    """One validated run of `strategy` (a canonical name) with seed `seed`, from `base`:

    - parameters: the strategy's registered ones (`registry.run_params`), each the value
      in `chosen` (a sweep's or a tune's value), else the one given in `base`, else its
      default; the settings of other strategies are left out, so they never change this
      run's folder;
    - flood level b: `chosen["b"]` when given (the level is then the sweep's or the tune's,
      whatever the weighting's own level); else `registry.flood_level`: 0 without flooding,
      b_example for example flooding (when >= 0), the weighting's own level for batch
      flooding (reweight's b_reweight, when >= 0), else b.

    Paired runs share their seed, and so their data, initial weights and batch order
    (lossbench/seeds.py); the strategy and b never enter a seed."""
    chosen = dict(chosen or {})
    params = {**base.strategy.params, **{k: v for k, v in chosen.items() if k != "b"}}
    if "b" in chosen:
        b = float(chosen["b"])
    else:
        b = registry.flood_level(strategy, params, base.strategy.b, base.strategy.b_example)
    return validate(with_settings(base, {"strategy": strategy, "seed": seed, "b": b,
                                         "params": registry.run_params(strategy, params)}))


def plan_runs(base: RunConfig, strategies: list[str], seeds: list[int]) -> list[RunConfig]:
    """One run per (seed, strategy), seed-major (the runs of a seed share one task); groups
    (`all`, `builtins`) expanded and plugins imported (`registry.expand`)."""
    names = registry.expand(strategies or ["plain"])
    return [run_config(base, name, seed) for seed in seeds for name in names]


def plan_sweep(base: RunConfig, strategy: str, param: str, values: list[float],
               seeds: list[int]) -> tuple[list[RunConfig], list[RunConfig]]:
    """A sweep's runs: (baseline, grid). The grid is `strategy` at every value of `param`
    for every seed, value-major. A sweep of b also runs the no-flood baseline (its weighting
    alone, `registry.no_flood_baseline`) on every seed, and leaves b = 0 out of the grid (the
    baseline is b = 0); other sweeps have no baseline."""
    strategy = registry.canonical(strategy)
    baseline = []
    if param == "b":
        baseline = [run_config(base, registry.no_flood_baseline(strategy), s) for s in seeds]
    grid = [run_config(base, strategy, s, {param: v}) for v in values
            if v or param != "b" for s in seeds]
    return baseline, grid


def plan_setting(base: RunConfig, strategy: str, values: dict[str, Any], seeds: list[int]
                 ) -> list[RunConfig]:
    """`strategy` at one setting on every seed (a tune's trial, or its final runs): the
    shared settings among `values` (flat keys: lr, weight_decay, aux, ...; checked) set on
    `base`, the strategy parameters and the flood level b as `run_config`'s `chosen`."""
    paths = setting_paths()
    shared = {k: v for k, v in values.items() if k in paths and k != "b"}
    own = {k: v for k, v in values.items() if k not in shared}
    base = validate(with_settings(base, shared)) if shared else base
    return [run_config(base, strategy, seed, own) for seed in seeds]
