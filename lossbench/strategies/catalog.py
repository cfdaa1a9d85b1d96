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
import importlib.util
from dataclasses import dataclass
from typing import Any

from lossbench.errors import ConfigError
from lossbench.strategies.param import Param, Search


@dataclass(frozen=True)
class Entry:
    """A registered weighting: `name`, `target` (its class, or "module:Class" to import it
    on first use), `params` (its constructor's keyword arguments), `flood_param` (the
    setting that gives its own flood level when it is flooded, or None to use b), and for a
    weighting that needs an optional extra of lossbench, `extra` (its name:
    `pip install "lossbench[jd]"`) and `requires` (the top-level modules it brings that this
    weighting imports; `missing` checks them without importing anything)."""

    name: str
    target: Any
    params: tuple[Param, ...] = ()
    flood_param: Param | None = None
    extra: str = ""
    requires: tuple[str, ...] = ()

    def load(self) -> type:
        """The weighting's class (importing its module, and torch, the first time)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def missing(self) -> list[str]:
        """The modules of `requires` that are not installed (torch-free: nothing is
        imported; a module hidden as `sys.modules[name] = None` counts as missing)."""
        return [name for name in self.requires if not module_installed(name)]

    def require(self) -> None:
        """A ConfigError in one line naming the extra to install when a module of
        `requires` is missing; nothing otherwise."""
        missing = self.missing()
        if missing:
            raise ConfigError(f"strategy '{self.name}' needs {', '.join(missing)}, which "
                              f"{'is' if len(missing) == 1 else 'are'} not installed: "
                              f'pip install "lossbench[{self.extra}]"')

    @property
    def all_params(self) -> tuple[Param, ...]:
        """`params`, then `flood_param` when there is one."""
        return (*self.params, *([self.flood_param] if self.flood_param else []))

    @classmethod
    def of_class(cls, strategy_class: type, name: str) -> Entry:
        """A plugin's Entry, from its class attributes `params` and `flood_param`."""
        return cls(name, strategy_class, tuple(getattr(strategy_class, "params", ())),
                   getattr(strategy_class, "flood_param", None))


def module_installed(name: str) -> bool:
    """Whether top-level module `name` can be imported (found on the path, not hidden)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or half-imported module counts as absent
        return False


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
    Entry("rlw", "lossbench.strategies.adaptive:RLW"),
    Entry("gradnorm", "lossbench.strategies.adaptive:GradNorm", (
        Param("gradnorm_alpha", 1.5, "asymmetry alpha: the pull of the gradient-norm targets "
              "towards a common training rate", lo=0.0, search=Search(0.0, 3.0)),
        Param("gradnorm_lr", 0.025, "learning rate of the weights' own Adam", lo=0.0,
              lo_open=True, search=Search(0.001, 0.1, log=True)),
    )),
    Entry("famo", "lossbench.strategies.adaptive:FAMO", (
        Param("famo_lr", 0.025, "learning rate of the weight logits' own Adam", lo=0.0,
              lo_open=True, search=Search(0.001, 0.1, log=True)),
        Param("famo_gamma", 0.001, "weight decay (L2) gamma of the weight logits", lo=0.0,
              search=Search(0.0001, 0.01, log=True)),
        Param("famo_update", "same-batch", "the losses after the step that update the logits: "
              "same-batch (the paper's: one more forward pass per step) or next-batch (the "
              "next step's, on another batch: no extra pass)",
              choices=("same-batch", "next-batch")),
    )),
    Entry("metabalance", "lossbench.strategies.gradient:MetaBalance", (
        Param("mb_beta", 0.9, "EMA rate beta of the gradient norms", lo=0.0, hi=1.0,
              hi_open=True),
        Param("mb_relax", 0.7, "relax factor r: how far g_aux moves to g_main's norm (the "
              "reference code takes 0 <= r < 1)", lo=0.0, hi=1.0, hi_open=True,
              search=Search(0.1, 0.9)),
        Param("mb_variant", "both", "where g_aux is adapted: both (always: the reference "
              "code), reduce (its norm is larger) or enlarge (smaller)",
              choices=("both", "reduce", "enlarge"),
              search=Search(choices=("both", "reduce", "enlarge"))),
    )),
    # --- torchjd aggregators (issue 30) ---
    Entry("mgda", "lossbench.strategies.jd:MGDA", (
        Param("mgda_epsilon", 0.001, "Frank-Wolfe stops when its step falls below this",
              lo=0.0, lo_open=True),
        Param("mgda_max_iters", 100, "most Frank-Wolfe steps (two losses need one)", lo=1),
    ), extra="jd", requires=("torchjd",)),
    Entry("cagrad", "lossbench.strategies.jd:CAGrad", (
        Param("cagrad_c", 0.4, "radius c of the ball around the mean gradient, in units of its "
              "norm (0: the mean gradient)", lo=0.0, hi=1.0, hi_open=True,
              search=Search(0.1, 0.9)),
        Param("cagrad_norm_eps", 1e-4, "below this norm the combination is taken as 0 (Pareto "
              "stationary)", lo=0.0),
    ), extra="jd", requires=("torchjd", "cvxpy", "clarabel")),
    Entry("nash-mtl", "lossbench.strategies.jd:NashMTL", (
        Param("nash_max_norm", 1.0, "clip the combined gradient to this norm (0: never)",
              lo=0.0),
        Param("nash_update_weights_every", 1, "solve for the weights every N steps, reuse them "
              "in between", lo=1),
        Param("nash_optim_niter", 20, "steps of the sequential convex program per solve", lo=1),
    ), extra="jd", requires=("torchjd", "cvxpy", "ecos")),
    Entry("imtl-g", "lossbench.strategies.jd:IMTLG", extra="jd", requires=("torchjd",)),
    Entry("aligned-mtl", "lossbench.strategies.jd:AlignedMTL", (
        Param("aligned_scale_mode", "min", "the eigenvalue of J J^T that scales the aligned "
              "gradients: min (the paper), median, or rmse (the mean, the authors' code)",
              choices=("min", "median", "rmse"),
              search=Search(choices=("min", "median", "rmse"))),
    ), extra="jd", requires=("torchjd",)),
    Entry("upgrad", "lossbench.strategies.jd:UPGrad", extra="jd",
          requires=("torchjd", "qpsolvers", "quadprog")),
    Entry("graddrop", "lossbench.strategies.jd:GradDrop", (
        Param("graddrop_leak_main", 0.0, "leak of g_main: the part of it never dropped (1: "
              "all)", lo=0.0, hi=1.0),
        Param("graddrop_leak_aux", 0.0, "leak of g_aux: the part of it never dropped (1: all)",
              lo=0.0, hi=1.0),
    ), extra="jd", requires=("torchjd",)),
    Entry("dualproj", "lossbench.strategies.jd:DualProj", extra="jd",
          requires=("torchjd", "qpsolvers", "quadprog")),
    Entry("gradvac", "lossbench.strategies.jd:GradVac", (
        Param("gradvac_beta", 0.5, "EMA rate of the target cosine phi_hat", lo=0.0, hi=1.0,
              search=Search(0.001, 1.0, log=True)),
        Param("gradvac_eps", 1e-8, "added to the denominators", lo=0.0),
    ), extra="jd", requires=("torchjd",)),
    Entry("config-grad", "lossbench.strategies.jd:ConFIG", extra="jd", requires=("torchjd",)),
)
"""The built-in weightings, in the order `lossbench strategies` lists them. A parameter's
`search` is where `lossbench tune` looks for it: the weights and rates on a log scale over
two to three decades around the published defaults; reweight's theta0, detach_theta and eps
(an initial value, the source's variant, a numerical guard) and uncertainty's initial
log-variance are not tuned unless `--space` names them."""

FLOODING_PARAMS: dict[str, tuple[Param, ...]] = {
    "adaflood": (
        Param("adaflood_gamma", 0.5, "AdaFlood's correction gamma: each example's level is "
              "theta_i = -log((1 - gamma) exp(-l_i) + gamma), l_i its loss under the auxiliary "
              "model that did not train on it (0: theta_i = l_i; 1: theta_i = 0, no flooding)",
              lo=0.0, hi=1.0, search=Search(0.0, 0.9)),
        Param("adaflood_folds", 2, "AdaFlood's folds K: the training rows are dealt into K "
              "folds, and K auxiliary models each train on the other K - 1", lo=2),
        Param("adaflood_aux_epochs", 0, "epochs of each AdaFlood auxiliary model (the weights "
              "of its best validation epoch are kept); 0 = the run's epochs", lo=0),
    ),
}
"""The parameters of a flooding modifier, by flooding kind (names.FLOOD_SUFFIX): a run of
`X-adaflood` has them next to its weighting's (`registry.run_params`). The auxiliary models
depend on the folds and their epochs, not on gamma, so a run with another gamma reuses them
(lossbench/training/adaflood.py). gamma 0.5 is the authors' code's default (their
`AdaFloodCLSLoss`); K = 2 is the cheapest held-out split (the authors' code defaults to 5
auxiliary models): two models on half the rows each cost about one run. The folds and the
auxiliary epochs are a budget, not tuned: `lossbench tune` tunes gamma alone, so that every
trial of an arm costs the same (and reuses the same cached auxiliary models)."""
