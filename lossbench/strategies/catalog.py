"""What the registry knows about a weighting before it is built, and the built-in ones.

An `Entry` is a weighting's name, where its class lives and its parameters. The built-ins are
declared here, apart from their classes, because their classes are torch modules: the
command line lists every parameter in `--help`, and checks a config file's keys, without
importing torch (about 3 s). A built-in's class holds its formula, state and logs; its
parameters are the ones below (its constructor takes them as keyword arguments). A plugin
declares everything on its class (`Strategy.params` and friends: lossbench/strategies/
base.py) and its Entry is read from there (`Entry.of_class`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from lossbench.strategies.param import Param, Search


@dataclass(frozen=True)
class Entry:
    """A registered weighting: `name`, `target` (its class, or "module:Class" to import it
    on first use), `params` (its constructor's keyword arguments) and `flood_param` (the
    setting that gives its own flood level when it is flooded, or None to use b)."""

    name: str
    target: Any
    params: tuple[Param, ...] = ()
    flood_param: Param | None = None

    def load(self) -> type:
        """The weighting's class (importing its module, and torch, the first time)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def all_params(self) -> tuple[Param, ...]:
        """`params`, then `flood_param` when there is one."""
        return (*self.params, *([self.flood_param] if self.flood_param else []))

    @classmethod
    def of_class(cls, strategy_class: type, name: str) -> Entry:
        """A plugin's Entry, from its class attributes `params` and `flood_param`."""
        return cls(name, strategy_class, tuple(getattr(strategy_class, "params", ())),
                   getattr(strategy_class, "flood_param", None))


BUILTINS: tuple[Entry, ...] = (
    Entry("plain", "lossbench.strategies.baselines:Plain"),
    Entry("weighted", "lossbench.strategies.baselines:Weighted",
          (Param("w", 0.5, "fixed weight of L_aux", lo=0.0,
                 search=Search(0.01, 10.0, log=True)),)),
    Entry("reweight", "lossbench.strategies.reweighting:Reweight", (
        Param("alpha", 0.1, "EMA rate of theta", lo=0.0, hi=1.0, lo_open=True,
              search=Search(0.01, 1.0, log=True)),
        Param("lam", 5.0, "lambda in theta~ = L_main / (L_main + lambda * L_aux + eps)",
              lo=0.0, search=Search(0.1, 100.0, log=True)),
        Param("theta0", 0.0, "initial theta"),
        Param("detach_theta", False, "detach theta~ from the graph (as CBiT); the source's "
              "code keeps its gradient"),
        Param("eps", 1e-12, "epsilon in the denominator of theta~", lo=0.0, lo_open=True),
    ), Param("b_reweight", 4.8, "flood level of this weighting when flooded (its total "
             "L_main + theta * L_aux is on another scale than L_main + L_aux); negative = use "
             "b. The default suits the default synthetic task")),
    Entry("uncertainty", "lossbench.strategies.baselines:Uncertainty",
          (Param("log_var0", -0.5, "initial log-variance s of both losses"),)),
    Entry("dwa", "lossbench.strategies.baselines:DWA",
          (Param("dwa_temp", 2.0, "temperature T of the softmax over loss ratios", lo=0.0,
                 lo_open=True, search=Search(0.5, 10.0, log=True)),)),
    Entry("gcs", "lossbench.strategies.gradient:GCS",
          (Param("gcs_weighted", False, "weight g_aux by max(0, cos) instead of gating it",
                 search=Search(choices=(False, True))),)),
    Entry("pcgrad", "lossbench.strategies.gradient:PCGrad"),
    # --- loss-level and gradient methods written here (issue 30) ---
    # --- torchjd aggregators (issue 30) ---
)
"""The built-in weightings, in the order `lossbench strategies` lists them. A parameter's
`search` is where `lossbench tune` looks for it: the weights and rates on a log scale over
two to three decades around the published defaults; reweight's theta0, detach_theta and eps
(an initial value, the source's variant, a numerical guard) and uncertainty's initial
log-variance are not tuned unless `--space` names them."""
