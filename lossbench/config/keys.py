"""Flat keys: every setting by the name a user types, mapped onto the sections; the settings
as `Param`s (their types, ranges and choices); and a run's identity."""

from __future__ import annotations

import dataclasses
from typing import Any

from lossbench.config.sections import RunConfig
from lossbench.errors import ConfigError
from lossbench.strategies import registry
from lossbench.strategies.names import FLOOD_TARGETS
from lossbench.strategies.param import Param

CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("synthetic", "movielens", "interactions"),
    "dataset": ("ml-100k", "ml-1m"),
    "model": ("sasrec", "gru"),
    "aux": ("supcon", "none"),
    "optimizer": ("sgd", "adam"),
    "lr_schedule": ("constant", "cosine"),
    "best_by": ("val_loss", "val_acc", "val_hr10", "val_ndcg10"),
    "device": ("auto", "cpu", "cuda"),
    "flood_target": FLOOD_TARGETS,
}
POSITIVE = ("n_items", "n_train_users", "n_val_users", "n_test_users", "seq_len", "taste_dim",
            "markov_fanout", "max_len", "hidden", "n_layers", "n_heads", "inner",
            "aux_tau_start", "aux_tau_end", "lr", "batch_size", "epochs", "eval_batch_size")
NON_NEGATIVE = ("min_rating", "k_core", "train_stride", "aux_warmup", "lr_warmup", "momentum",
                "weight_decay", "patience", "b", "seed", "taste_scale")
UNIT_INTERVAL = ("noise", "taste_prob", "dropout", "aux_mask_prob", "label_noise",
                 "label_smoothing")
STRATEGY_KEYS = ("strategy", "b", "b_example", "params", "seed")
"""Settings that may differ between the runs of one experiment folder."""


def setting_paths(cfg: RunConfig | None = None) -> dict[str, tuple[str, ...]]:
    """Flat key -> the attribute path of that setting in a RunConfig, in section order:
    `hidden` -> ("model", "hidden"), `task` -> ("task", "name"), `params` -> ("strategy",
    "params"). Read from the dataclasses (of `cfg`, default a fresh RunConfig)."""
    out: dict[str, tuple[str, ...]] = {}

    def walk(obj: Any, path: tuple[str, ...]) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, (*path, f.name))
            else:
                key = path[0] if f.name == "name" and len(path) == 1 else f.name
                out[key] = (*path, f.name)

    walk(cfg if cfg is not None else RunConfig(), ())
    return out


def flat(cfg: RunConfig) -> dict[str, Any]:
    """Every setting of `cfg` by its flat key (config.json's form): `{"task": "synthetic",
    "n_items": 150, ..., "params": {...}, "seed": 0, "device": "auto"}`."""
    out = {}
    for key, path in setting_paths(cfg).items():
        value: Any = cfg
        for name in path:
            value = getattr(value, name)
        out[key] = dict(value) if key == "params" else value
    return out


def with_settings(cfg: RunConfig, values: dict[str, Any]) -> RunConfig:
    """`cfg` with the settings `values` (flat keys, values already checked) replaced."""
    paths = setting_paths(cfg)
    for key, value in values.items():
        cfg = replace_at(cfg, paths[key], value)
    return cfg


def replace_at(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    """`obj` (a frozen dataclass) with the attribute at `path` set to `value`."""
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: replace_at(getattr(obj, path[0]), path[1:],
                                                            value)})


def setting_params() -> dict[str, Param]:
    """Every config setting (not `params`) as a `Param`: its default, and its range or
    choices (CHOICES, POSITIVE, NON_NEGATIVE, UNIT_INTERVAL). The one checker of values."""
    out = {}
    for key, default in flat(RunConfig()).items():
        if key == "params":
            continue
        bounds: dict[str, Any] = {}
        if key in POSITIVE:
            bounds = {"lo": 0, "lo_open": True}
        elif key in NON_NEGATIVE:
            bounds = {"lo": 0}
        elif key in UNIT_INTERVAL:
            bounds = {"lo": 0, "hi": 1}
        elif key == "attn_dropout":
            bounds = {"hi": 1}
        out[key] = Param(key, default, "", choices=CHOICES.get(key, ()), **bounds)
    return out


RESOLVED_KEYS = ("b_example",)
"""Settings that reach a run only through another: the planner resolves the flood level of
example flooding into the run's `b` (lossbench/runner/plan.py), so they do not identify it."""


def identity(settings: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run or an experiment: its flat settings that differ from their
    defaults (but RESOLVED_KEYS), and the parameters its strategy declares that differ from
    their defaults (`params`, only when some do). A key missing from `settings` (a
    config.json written before the setting existed) is its default, and keys unknown here
    are left out, so adding a setting whose default keeps today's behaviour changes no
    identity; parameters the strategy does not declare (lossbench 0.1 wrote the
    reweighting's for every run) do not count either."""
    defaults = flat(RunConfig())
    out = {k: v for k, v in settings.items()
           if k in defaults and k not in ("params", *RESOLVED_KEYS) and v != defaults[k]}
    given = settings.get("params") or {}
    try:
        declared = registry.run_params(settings.get("strategy", defaults["strategy"]), {})
    except ConfigError:  # a plugin that cannot be imported here: every value identifies
        declared = dict.fromkeys(given)
    params = {k: given[k] for k in declared if k in given and given[k] != declared[k]}
    return {**out, "params": params} if params else out
