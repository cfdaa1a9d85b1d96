"""The strategy registry: the one place that knows how losses can be combined.

A strategy name is a *weighting* (how L_main and L_aux are weighted: `plain`, `weighted`,
`reweight`, `uncertainty`, `dwa`, `gcs`, `pcgrad`, or a plugin) with an optional *flooding*
suffix:

    X          no flooding
    X-flood    batch flooding, |L - b| + b on the weighted total (Ishida et al., 2020)
    X-iflood   example flooding: each L_main example floods alone, |l_i - b| + b, before the
               weighting (iFlood, Xie et al., 2022); L_aux's anchors are not flooded
    flood      = plain-flood,  iflood = plain-iflood

so `flood` and `reweight-flood` are the seed's two flooded strategies, and `uncertainty-flood`,
`dwa-iflood`, `mypkg.mod:HalfAux-flood` work the same way. Groups: `all` (the seed's four:
plain, reweight, flood, reweight-flood) and `builtins` (every built-in weighting, plus flood,
reweight-flood and iflood).

Plugins: `--strategy pkg.module:ClassName` (or `path/to/file.py:ClassName`) imports a
`Strategy` subclass; installed packages register under the entry-point group
`lossbench.strategies` (name = strategy name, value = `module:Class`). Everything else (config
keys, CLI options, sweeps, the report's baselines, the plots) asks this module.

    objective = build_objective("reweight-flood", {"alpha": 0.1, ...}, b=4.8)
    step = objective(losses.main, losses.aux)   # step.objective is what is minimised
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lossbench.errors import ConfigError
from lossbench.losses import LossTerm, as_term
from lossbench.strategies.base import Param, Strategy
from lossbench.strategies.baselines import DWA, Uncertainty, Weighted
from lossbench.strategies.gradient import GCS, PCGrad
from lossbench.strategies.seed import Plain, Reweight, flood, flood_examples, reweight_theta

__all__ = ["LossTerm", "Param", "Strategy", "build_objective", "build_strategy", "flood",
           "flood_examples", "reweight_theta"]

BUILTINS: tuple[type[Strategy], ...] = (Plain, Weighted, Reweight, Uncertainty, DWA, GCS,
                                        PCGrad)
FLOOD_SUFFIX = {"batch": "-flood", "example": "-iflood"}
GROUPS = {"all": ("plain", "reweight", "flood", "reweight-flood"),
          "builtins": (*(cls.name for cls in BUILTINS), "flood", "reweight-flood", "iflood")}
ENTRY_POINT_GROUP = "lossbench.strategies"
RESERVED = frozenset({"b", "strategy", "seed", "params"})
"""Names a strategy parameter may not take (besides every RunConfig field)."""

REGISTRY: dict[str, type[Strategy]] = {}
"""Weighting name -> class. Built-ins first, then plugins as they are loaded."""


# --- registering -------------------------------------------------------------------------


def register(cls: type, name: str | None = None) -> type[Strategy]:
    """Add a weighting class under `name` (default `cls.name`) after checking that it keeps
    the interface (a ConfigError naming the class otherwise). Returns the class."""
    name = name or getattr(cls, "name", "")
    where = f"strategy '{name or getattr(cls, '__name__', cls)}'"
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{where} is not a subclass of lossbench.strategies.Strategy")
    if not name or name.endswith(tuple(FLOOD_SUFFIX.values())) or name in GROUPS:
        raise ConfigError(f"{where}: a strategy needs a name that is not a group and does "
                          "not end in -flood or -iflood")
    known = all_params()
    for param in (*cls.params, *([cls.flood_param] if cls.flood_param else [])):
        if not isinstance(param, Param):
            raise ConfigError(f"{where}: params must be lossbench.strategies.Param objects")
        if param.name in reserved_names():
            raise ConfigError(f"{where}: parameter '{param.name}' clashes with a setting")
        if param.name in known and known[param.name] != param:
            raise ConfigError(f"{where}: parameter '{param.name}' is declared differently "
                              "by another strategy")
    REGISTRY[name] = cls
    return cls


def reserved_names() -> set[str]:
    from lossbench.config import FIELD_TYPES  # config imports this module at call time only

    return set(FIELD_TYPES) | RESERVED


def check_interface(cls: type[Strategy], name: str) -> None:
    """Build `cls` with its defaults and call it once on a tiny batch: it must return a
    scalar tensor with a gradient (and combine gradients, if it says it does). A plugin that
    breaks the contract is a ConfigError here, before any run starts."""
    try:
        strategy = cls(**{p.name: p.default for p in cls.params})
        main = torch.tensor([1.0, 2.0], requires_grad=True)
        aux = torch.tensor([0.5], requires_grad=True)
        total = strategy(LossTerm(main, main.mean()), LossTerm(aux, aux.mean()))
        if not isinstance(total, Tensor) or total.dim() != 0 or not total.requires_grad:
            raise TypeError(f"forward must return a scalar tensor with a gradient, got "
                            f"{type(total).__name__}"
                            f"{tuple(total.shape) if isinstance(total, Tensor) else ''}")
        if cls.needs_grads:
            grads = strategy.combine_grads([torch.ones(2)], [torch.ones(2)])
            if len(grads) != 1 or tuple(grads[0].shape) != (2,):
                raise TypeError("combine_grads must return one tensor per parameter, shaped "
                                "like it")
        strategy.log_state()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin is the user's to fix
        raise ConfigError(f"strategy '{name}' does not keep the Strategy interface: "
                          f"{type(exc).__name__}: {exc}") from None


def load_plugin(path: str) -> type[Strategy]:
    """Import `module:Class` or `file.py:Class` and register it under that import path (the
    current folder is importable, as with `python -m`)."""
    module_name, _, class_name = path.partition(":")
    try:
        if module_name.endswith(".py") or "/" in module_name:
            spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if spec is None or spec.loader is None or not Path(module_name).is_file():
                raise FileNotFoundError(f"no such file: {module_name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the user's to fix
        raise ConfigError(f"cannot load strategy plugin '{path}': {type(exc).__name__}: {exc}"
                          ) from None
    register(cls, path)
    check_interface(cls, path)
    return cls


_ENTRY_POINTS_LOADED = False


def load_entry_points() -> None:
    """Register every installed plugin of the entry-point group (once per process)."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in REGISTRY:
            continue
        try:
            cls = point.load()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot load strategy plugin '{point.name}' ({point.value}) "
                              f"from entry point group {ENTRY_POINT_GROUP}: {exc}") from None
        register(cls, point.name)
        check_interface(cls, point.name)


# --- names -------------------------------------------------------------------------------


def split_name(name: str) -> tuple[str, str]:
    """`reweight-flood` -> ("reweight", "batch"); `iflood` -> ("plain", "example"); `dwa` ->
    ("dwa", "none"). Pure string work: the weighting need not be registered."""
    if name in ("flood", "iflood"):
        return "plain", "batch" if name == "flood" else "example"
    for flooding, suffix in FLOOD_SUFFIX.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], flooding
    return name, "none"


def join_name(weighting: str, flooding: str) -> str:
    """The canonical name: the inverse of `split_name` (plain + batch = `flood`)."""
    if flooding == "none":
        return weighting
    if weighting == "plain":
        return FLOOD_SUFFIX[flooding][1:]
    return weighting + FLOOD_SUFFIX[flooding]


def weighting_class(weighting: str) -> type[Strategy]:
    """The registered class of a weighting, loading plugins on demand; a ConfigError listing
    the known names otherwise."""
    if weighting in REGISTRY:
        return REGISTRY[weighting]
    if ":" in weighting:
        return load_plugin(weighting)
    load_entry_points()
    if weighting in REGISTRY:
        return REGISTRY[weighting]
    raise ConfigError(f"unknown strategy '{weighting}'; choose one of: "
                      f"{', '.join(known_names())}, or a plugin module:Class")


def known_names() -> list[str]:
    """Every strategy name and group a user can type (for errors and help)."""
    names = []
    for weighting in REGISTRY:
        names += [weighting, join_name(weighting, "batch"), join_name(weighting, "example")]
    return [*dict.fromkeys(names), *GROUPS]


def canonical(name: str) -> str:
    """A validated, canonical strategy name (`plain-flood` -> `flood`)."""
    weighting, flooding = split_name(name.strip())
    weighting_class(weighting)
    return join_name(weighting, flooding)


def expand(names: list[str]) -> list[str]:
    """Strategy names and groups -> canonical names, first occurrence kept."""
    out: list[str] = []
    for name in names:
        for one in GROUPS.get(name, (name,)):
            one = canonical(one)
            if one not in out:
                out.append(one)
    return out


def no_flood_baseline(name: str) -> str:
    """What a strategy is paired with to see what flooding did: its weighting without
    flooding (`reweight` for `reweight-flood`, `plain` for `flood`); `plain` for a weighting."""
    weighting, flooding = split_name(name)
    return weighting if flooding != "none" else "plain"


def order_key(name: str) -> tuple[int, int, str]:
    """Sort key for tables and plots: the seed's four first, then registry order, then the
    rest by name."""
    seed_four = GROUPS["all"]
    if name in seed_four:
        return (0, seed_four.index(name), name)
    weighting, flooding = split_name(name)
    order = list(REGISTRY)
    return (1, order.index(weighting) if weighting in order else len(order), name)


# --- parameters ----------------------------------------------------------------------------


def all_params() -> dict[str, Param]:
    """Every registered parameter by name (weighting params and flood-level params)."""
    out: dict[str, Param] = {}
    for cls in REGISTRY.values():
        for param in (*cls.params, *([cls.flood_param] if cls.flood_param else [])):
            out.setdefault(param.name, param)
    return out


def owners(param_name: str) -> list[str]:
    """The weightings that declare a parameter (for help texts)."""
    return [name for name, cls in REGISTRY.items()
            if any(p.name == param_name for p in cls.params)
            or (cls.flood_param and cls.flood_param.name == param_name)]


def run_params(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The parameters of one run of strategy `name`: its weighting's registered params, each
    from `given` (checked) or its default. Settings of other strategies in `given` are left
    out, so they never change this run's folder."""
    cls = weighting_class(split_name(name)[0])
    return {p.name: p.check(given[p.name]) if p.name in given else p.default
            for p in cls.params}


def flood_level(name: str, given: dict[str, Any], b: float, b_example: float = -1.0
                ) -> float:
    """The flood level b of a run: 0 without flooding; for example flooding `b_example` when
    it is >= 0 (one example's scale); for batch flooding the weighting's own flood-level
    setting when it has one and it is >= 0 (`b_reweight`); else `b`."""
    weighting, flooding = split_name(name)
    if flooding == "none":
        return 0.0
    if flooding == "example":
        return float(b_example if b_example >= 0 else b)
    own = weighting_class(weighting).flood_param
    if own is not None:
        level = own.check(given[own.name]) if own.name in given else own.default
        if level >= 0:
            return float(level)
    return float(b)


def describe() -> list[dict]:
    """One entry per registered weighting for `lossbench strategies` (plugins from entry
    points included): name, flooded variants, doc, params, logs, citation."""
    load_entry_points()
    rows = []
    for name, cls in REGISTRY.items():
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        params = [*cls.params, *([cls.flood_param] if cls.flood_param else [])]
        rows.append({"name": name, "variants": [join_name(name, f) for f in FLOOD_SUFFIX],
                     "doc": " ".join(doc.split()), "citation": cls.citation,
                     "baseline": "plain" if name != "plain" else "-",
                     "gradients": cls.needs_grads, "fusable": cls.fusable,
                     "logs": list(cls.logs),
                     "params": [{"name": p.name, "type": p.type.__name__,
                                 "default": p.default, "range": p.bound_text(), "doc": p.doc}
                                for p in params]})
    return rows


# --- one run's objective ---------------------------------------------------------------------


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


def build_objective(name: str, params: dict[str, Any], b: float = 0.0) -> Objective:
    """A fresh Objective (fresh state) for one run of strategy `name` with the weighting's
    parameters `params` (missing ones take their defaults) and flood level `b`."""
    weighting, flooding = split_name(name)
    cls = weighting_class(weighting)
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
    declared = {p.name for p in weighting_class(split_name(name)[0]).params}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ConfigError(f"strategy '{name}' has no parameter {', '.join(unknown)}; it has: "
                          f"{', '.join(sorted(declared)) or 'none'}")
    return build_objective(name, params, b)


for _cls in BUILTINS:
    register(_cls)
