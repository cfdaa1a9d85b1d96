"""The strategy registry: the one place that knows which weightings exist and what they take.

A strategy name is a weighting (`plain`, `weighted`, `reweight`, `uncertainty`, `dwa`, `gcs`,
`pcgrad`, or a plugin) with an optional flooding suffix (`-flood`, `-iflood`, `-adaflood`: see
names.py). A flooding modifier may have parameters of its own (`catalog.FLOODING_PARAMS`:
AdaFlood's); a run of it has them next to its weighting's (`run_params`).
Groups: `all` (the four strategies of the source: plain, reweight, flood, reweight-flood),
`builtins` (every built-in weighting that needs no extra, plus flood, reweight-flood and
iflood) and `jd` (torchjd's gradient aggregators: mgda, cagrad, ..., with `lossbench[jd]`).

A built-in that needs an optional extra (`Entry.extra`) is listed and described without it;
naming it for a run (`canonical`) without the extra's modules is a one-line ConfigError that
says what to install, before anything is written.

Plugins: `--strategy pkg.module:ClassName` (or `path/to/file.py:ClassName`) imports a
`Strategy` subclass; installed packages register under the entry-point group
`lossbench.strategies` (name = strategy name, value = `module:Class`). Everything else (config
keys, CLI options, sweeps, the report's baselines, the plots) asks this module.

Torch-free: the registry holds `catalog.Entry`s, and a weighting's class (a torch module) is
imported only when it is built or described (`Entry.load`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from lossbench.errors import ConfigError
from lossbench.strategies.catalog import BUILTINS, FLOODING_PARAMS, Entry
from lossbench.strategies.names import FLOOD_SUFFIX, join_name, split_name
from lossbench.strategies.param import Param

GROUPS = {"all": ("plain", "reweight", "flood", "reweight-flood"),
          "builtins": (*(entry.name for entry in BUILTINS if not entry.extra), "flood",
                       "reweight-flood", "iflood"),
          "jd": tuple(entry.name for entry in BUILTINS if entry.extra == "jd")}
ENTRY_POINT_GROUP = "lossbench.strategies"
RESERVED = frozenset({"b", "b_example", "strategy", "seed", "params"})
"""Names a strategy parameter may not take. The configuration refuses a parameter named like
any of its settings when it reads one (`config.strategy_params`): the registry does not
know the configuration."""

REGISTRY: dict[str, Entry] = {entry.name: entry for entry in BUILTINS}
"""Weighting name -> Entry. Built-ins first, then plugins as they are loaded."""


# --- registering -------------------------------------------------------------------------


def register(cls: type, name: str | None = None) -> type:
    """Add a plugin's weighting class under `name` (default `cls.name`) after checking its
    declarations (a ConfigError naming the class otherwise). Returns the class."""
    from lossbench.strategies.base import Strategy  # a plugin class has imported torch

    name = name or getattr(cls, "name", "")
    where = f"strategy '{name or getattr(cls, '__name__', cls)}'"
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{where} is not a subclass of lossbench.strategies.Strategy")
    if not name or name.endswith(tuple(FLOOD_SUFFIX.values())) or name in GROUPS:
        raise ConfigError(f"{where}: a strategy needs a name that is not a group and does "
                          "not end in -flood, -iflood or -adaflood")
    known = all_params()
    entry = Entry.of_class(cls, name)
    for param in entry.all_params:
        if not isinstance(param, Param):
            raise ConfigError(f"{where}: params must be lossbench.strategies.Param objects")
        if param.name in RESERVED:
            raise ConfigError(f"{where}: parameter '{param.name}' clashes with a setting")
        if param.name in known and known[param.name] != param:
            raise ConfigError(f"{where}: parameter '{param.name}' is declared differently "
                              "by another strategy")
    REGISTRY[name] = entry
    return cls


def check_interface(cls: type, name: str) -> None:
    """Build `cls` with its defaults and call it once on a tiny batch: it must return a
    scalar tensor with a gradient (and combine gradients, if it says it does). A plugin that
    breaks the contract is a ConfigError here, before any run starts."""
    import torch  # here, not at the top: the registry serves --help, which must not wait
    from torch import Tensor

    from lossbench.strategies.base import LossTerm

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


def load_plugin(path: str) -> type:
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
    from importlib.metadata import entry_points  # here: --help needs none

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


def entry(weighting: str) -> Entry:
    """The registry's entry of a weighting, loading plugins on demand (`module:Class`, entry
    points); a ConfigError listing the known names otherwise."""
    if weighting in REGISTRY:
        return REGISTRY[weighting]
    if ":" in weighting:
        load_plugin(weighting)
        return REGISTRY[weighting]
    load_entry_points()
    if weighting in REGISTRY:
        return REGISTRY[weighting]
    raise ConfigError(f"unknown strategy '{weighting}'; choose one of: "
                      f"{', '.join(known_names())}, or a plugin module:Class")


def weighting_class(weighting: str) -> type:
    """The class of a registered weighting (imports it, and torch, on first use)."""
    return entry(weighting).load()


def known_names() -> list[str]:
    """Every strategy name and group a user can type (for errors and help)."""
    names = []
    for weighting in REGISTRY:
        names += [weighting, *(join_name(weighting, flooding) for flooding in FLOOD_SUFFIX)]
    return [*dict.fromkeys(names), *GROUPS]


def canonical(name: str) -> str:
    """A validated, canonical strategy name (`plain-flood` -> `flood`): a known weighting
    whose extra, if it needs one, is installed (a ConfigError otherwise)."""
    weighting, flooding = split_name(name.strip())
    entry(weighting).require()
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


def order_key(name: str) -> tuple[int, int, str]:
    """Sort key for tables and plots: the source's four (group `all`) first, then registry
    order, then the rest by name."""
    four = GROUPS["all"]
    if name in four:
        return (0, four.index(name), name)
    weighting, flooding = split_name(name)
    order = list(REGISTRY)
    return (1, order.index(weighting) if weighting in order else len(order), name)


# --- parameters ----------------------------------------------------------------------------


def all_params() -> dict[str, Param]:
    """Every registered parameter by name (weighting params, flood-level params and the
    flooding modifiers' params)."""
    out: dict[str, Param] = {}
    for known in REGISTRY.values():
        for param in known.all_params:
            out.setdefault(param.name, param)
    for params in FLOODING_PARAMS.values():
        for param in params:
            out.setdefault(param.name, param)
    return out


def owners(param_name: str) -> list[str]:
    """The weightings, and flooding modifiers (`X-adaflood`), that declare a parameter (for
    help texts)."""
    return [*(name for name, known in REGISTRY.items()
              if any(p.name == param_name for p in known.all_params)),
            *(f"X{FLOOD_SUFFIX[flooding]}" for flooding, params in FLOODING_PARAMS.items()
              if any(p.name == param_name for p in params))]


def strategy_params(name: str) -> tuple[Param, ...]:
    """The parameters of strategy `name`: its weighting's, then its flooding modifier's
    (`catalog.FLOODING_PARAMS`: `adaflood_gamma`, ... for `X-adaflood`)."""
    weighting, flooding = split_name(name)
    return (*entry(weighting).params, *FLOODING_PARAMS.get(flooding, ()))


def run_params(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The parameters of one run of strategy `name`: its weighting's registered params, then
    its flooding modifier's (`catalog.FLOODING_PARAMS`: `adaflood_gamma`, ... for
    `X-adaflood`), each from `given` (checked) or its default. Settings of other strategies
    in `given` are left out, so they never change this run's folder."""
    return {p.name: p.check(given[p.name]) if p.name in given else p.default
            for p in strategy_params(name)}


def flood_level(name: str, given: dict[str, Any], b: float, b_example: float = -1.0
                ) -> float:
    """The flood level b of a run: 0 without flooding, and for AdaFlood (its levels are per
    example, from its auxiliary models); for example flooding `b_example` when it is >= 0
    (one example's scale); for batch flooding the weighting's own flood-level setting when it
    has one and it is >= 0 (`b_reweight`); else `b`."""
    weighting, flooding = split_name(name)
    if flooding in ("none", "adaflood"):
        return 0.0
    if flooding == "example":
        return float(b_example if b_example >= 0 else b)
    own = entry(weighting).flood_param
    if own is not None:
        level = own.check(given[own.name]) if own.name in given else own.default
        if level >= 0:
            return float(level)
    return float(b)


def describe() -> list[dict]:
    """One entry per registered weighting for `lossbench strategies` (plugins from entry
    points included): name, flooded variants, its whole docstring (the formula), params,
    logs, citation, and the extra it needs (`extra`, "" for none; `installed`: whether its
    modules are)."""
    import inspect

    load_entry_points()
    rows = []
    for name, known in REGISTRY.items():
        cls = known.load()
        rows.append({"name": name, "kind": "weighting",
                     "variants": [join_name(name, f) for f in FLOOD_SUFFIX],
                     "doc": inspect.cleandoc(cls.__doc__ or ""), "citation": cls.citation,
                     "baseline": "plain" if name != "plain" else "-",
                     "gradients": cls.needs_grads, "fusable": cls.fusable,
                     "logs": list(cls.logs), "extra": known.extra,
                     "installed": not known.missing(),
                     "params": [param_row(p) for p in known.all_params]})
    return rows


def param_row(param: Param) -> dict:
    """A parameter as `lossbench strategies --json` lists it."""
    return {"name": param.name, "type": param.type.__name__, "default": param.default,
            "range": param.bound_text(), "doc": param.doc,
            "search": param.search.text() if param.search else ""}


FLOODING = {
    "batch": ("Batch flooding: each step's weighted total L is replaced by |L - b| + b. Above "
              "the flood level b this is L; below it, 2b - L, so the gradient flips sign and "
              "the training loss is pushed back up towards b (the validation loss can then "
              "descend a second time). The setting flood_target (--set flood_target=...) "
              "chooses what floods: total (the weighted total, the default), main (L_main "
              "alone before the weighting: L = w(|L_main - b| + b, L_aux)) or aux (L_aux "
              "alone); b is on the scale of what floods.",
              "Ishida, Yamane, Sakai, Niu & Sugiyama, Do We Need Zero Training Loss After "
              "Achieving Zero Training Error?, ICML 2020"),
    "example": ("Example flooding (iFlood): every L_main example floods alone, l_i -> "
                "|l_i - b| + b, before the weighting takes the batch mean; L_aux is not "
                "flooded.",
                "Xie, Wang, Yu, Li & Wang, iFlood: A Stable and Effective Regularizer, "
                "ICLR 2022"),
    "adaflood": ("Adaptive flooding (AdaFlood): every L_main example floods at its own level, "
                 "l_i -> |l_i - theta_i| + theta_i, before the weighting takes the batch mean "
                 "(L_aux is not flooded). The training rows are dealt into K folds "
                 "(adaflood_folds); K auxiliary models, the run's model trained on L_main alone "
                 "on the other K - 1 folds (adaflood_aux_epochs, keeping the best validation "
                 "epoch), give each example its held-out loss l_aux,i, corrected to "
                 "theta_i = -log((1 - gamma) exp(-l_aux,i) + gamma) (adaflood_gamma). The "
                 "auxiliary models are trained once per seed and settings and cached "
                 "($LOSSBENCH_CACHE_DIR, else ~/.cache/lossbench, folder adaflood); "
                 "summary.json gives their cost (adaflood_aux_seconds). Not fused.",
                 "Bae, Ren, Ahmed, Tung, Sutherland & Oliveira, AdaFlood: Adaptive Flood "
                 "Regularization, TMLR 2024"),
}
"""The flooding modifiers: what each does, and its citation."""


def describe_flooding(b: Param, b_example: Param) -> list[dict]:
    """The flooding modifiers as rows like `describe`'s: `X-flood` (level `b`, or the
    weighting's own level where it has one), `X-iflood` (level `b_example`) and `X-adaflood`
    (its parameters, `catalog.FLOODING_PARAMS`). The two levels are the run configuration's
    settings, given by the caller (the registry does not read the configuration)."""
    own = [p for known in REGISTRY.values() if known.flood_param for p in [known.flood_param]]
    rows = []
    for flooding, levels in (("batch", [b, *own]), ("example", [b_example, b]),
                             ("adaflood", list(FLOODING_PARAMS["adaflood"]))):
        doc, citation = FLOODING[flooding]
        examples = [join_name(name, flooding) for name in list(REGISTRY)[:3]]
        rows.append({"name": f"X{FLOOD_SUFFIX[flooding]}", "kind": "flooding",
                     "variants": examples, "doc": doc, "citation": citation,
                     "baseline": "X (no flooding)", "gradients": False,
                     "fusable": flooding != "adaflood", "logs": [], "extra": "",
                     "installed": True,
                     "params": [param_row(p) for p in dict.fromkeys(levels)]})
    return rows
