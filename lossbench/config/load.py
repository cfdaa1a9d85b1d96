"""The two layers that fill a configuration, a TOML file and the command line, and the one
checker every value passes (`coerce`, `validate`)."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from lossbench.bundled import resolve_config
from lossbench.config.keys import flat, setting_params, setting_paths, with_settings
from lossbench.config.sections import RunConfig
from lossbench.errors import ConfigError
from lossbench.strategies import GROUPS, all_params, expand, owners, split_name
from lossbench.strategies.names import PER_EXAMPLE, flood_target_error
from lossbench.strategies.param import Param


def strategy_params() -> dict[str, Param]:
    """Every registered strategy parameter by name (the registry's, plugins loaded so far);
    a ConfigError when a plugin declares one named like a config setting."""
    params = all_params()
    for name in sorted(set(params) & set(setting_params())):
        raise ConfigError(f"strategy '{owners(name)[0]}': parameter '{name}' clashes with the "
                          "setting of that name")
    return params


def coerce(key: str, value: Any, source: str = "") -> Any:
    """Return `value` as setting `key` wants it (a config setting or a registered strategy
    parameter: `Param.check`, its type and range); raise ConfigError for an unknown key
    (suggesting the closest known keys: `close_keys`), a wrong type or a value out of range."""
    where = f" in {source}" if source else ""
    known = {**setting_params(), **strategy_params()}
    if key not in known:
        raise unknown_setting(key, list(known), where)
    return known[key].check(value, where)


def unknown_setting(key: str, known: list[str], where: str) -> ConfigError:
    """The error for a key that is no setting: one line suggesting the closest known keys."""
    close = close_keys(key, known)
    hint = (f"did you mean {' or '.join(repr(k) for k in close)}?" if close else
            "the settings are listed in the reference (lossbench/config/sections.py), the "
            "strategy parameters by `lossbench strategies`")
    return ConfigError(f"unknown setting '{key}'{where}; {hint}")


def close_keys(key: str, known: list[str]) -> list[str]:
    """The known keys to suggest for the unknown `key`: the key itself written lower-case
    with underscores (`--set Time-Col` -> `time_col`) if that is known, else at most three
    keys closest to it by difflib's ratio (>= 0.6), best first (`epoch` -> `epochs`)."""
    plain = key.lower().replace("-", "_")
    return [plain] if plain in known else difflib.get_close_matches(plain, known, 3, 0.6)


def validate(cfg: RunConfig, source: str = "") -> RunConfig:
    """Check every setting (`Param.check`), the strategy (a ConfigError naming it when it is
    unknown) and its parameters, and the settings that constrain each other; return `cfg`
    unchanged or raise ConfigError."""
    where = f" (in {source})" if source else ""
    params = setting_params()
    for key, value in flat(cfg).items():
        if key != "params":
            params[key].check(value, where)
    names = expand([cfg.strategy.name])
    for key, value in cfg.strategy.params.items():
        coerce(key, value, source)
    target = cfg.strategy.flood_target
    for flooding in {split_name(name)[1] for name in names} & set(PER_EXAMPLE):
        if target != "total":
            raise ConfigError(flood_target_error(target, flooding) + where)
    task, model = cfg.task, cfg.model
    if task.train_stride > task.max_len:
        raise ConfigError(f"train_stride ({task.train_stride}) must be <= max_len "
                          f"({task.max_len}): a larger stride would skip targets{where}")
    if model.hidden % model.n_heads != 0:
        raise ConfigError(f"hidden ({model.hidden}) must be divisible by n_heads "
                          f"({model.n_heads})")
    if task.name == "synthetic" and cfg.train.batch_size > task.synthetic.n_train_users:
        raise ConfigError(f"batch_size ({cfg.train.batch_size}) is larger than the training "
                          f"split (n_train_users = {task.synthetic.n_train_users}){where}")
    if task.name == "interactions" and not task.file.data:
        raise ConfigError(f"--task interactions needs a file: --data PATH{where}")
    return cfg


# --- the two layers ----------------------------------------------------------------------


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file into a flat {key: value} dict. Keys stand at the top level or in a
    table naming their section (`[model]`, `[task.synthetic]`, `[strategy]` for strategy
    parameters too); a key in another section's table, or an unknown table, is a
    ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    paths = setting_paths()
    sections = {p[:i] for p in paths.values() for i in range(1, len(p))}
    flat_values: dict[str, Any] = {}

    def take(table: dict, section: tuple[str, ...]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                if (*section, key) not in sections:
                    raise ConfigError(f"config file {path}: unknown table "
                                      f"[{'.'.join((*section, key))}]; sections: "
                                      f"{', '.join(sorted('.'.join(s) for s in sections))}")
                take(value, (*section, key))
                continue
            if key not in paths and section not in ((), ("strategy",)):
                raise unknown_setting(key, [*paths, *strategy_params()], f" in {path}")
            home = paths.get(key, ("strategy", key))  # a strategy parameter (or unknown)
            if section and home[:len(section)] != section:
                raise ConfigError(f"config file {path}: '{key}' is not a setting of "
                                  f"[{'.'.join(section)}]; it belongs to "
                                  f"[{'.'.join(home[:-1]) or 'the top level'}]")
            if key in flat_values:
                raise ConfigError(f"config file {path}: '{key}' is set twice")
            flat_values[key] = value

    take(raw, ())
    return flat_values


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None
                ) -> RunConfig:
    """Defaults, then the TOML file `path` (if any: a file, or the name of a bundled one,
    `bundled.resolve_config`), then `overrides`; validated. The strategy is resolved first
    (`resolve_strategy`), so a plugin's parameters are known keys in both layers."""
    cfg = RunConfig()
    source, from_file = "", {}
    if path is not None:
        path = resolve_config(path)
        source, from_file = str(path), read_toml(path)
    overrides = overrides or {}
    resolve_strategy(overrides.get("strategy", from_file.get("strategy")))
    if from_file:
        cfg = apply(cfg, from_file, source)
    if overrides:
        cfg = apply(cfg, overrides, "the command line")
    return validate(cfg, source)


def resolve_strategy(strategy: Any) -> None:
    """Load what a strategy value names before any other key is checked: a plugin
    (`module:Class`, `file.py:Class`, an entry point) registers its parameters. Bad names
    are left for `validate` to report."""
    if not isinstance(strategy, str):
        return
    try:
        expand([name for name in strategy.split(",") if name not in GROUPS])
    except ConfigError:
        pass


def apply(cfg: RunConfig, values: dict[str, Any], source: str) -> RunConfig:
    """`cfg` with `values` (flat keys) set: config settings in their sections, strategy
    parameters into `strategy.params`; each value checked (`coerce`)."""
    if "params" in values:
        raise ConfigError(f"'params' is not a setting ({source}); set strategy parameters "
                          "by name (alpha = 0.1)")
    checked = {k: coerce(k, v, source) for k, v in values.items()}
    settings = setting_params()
    params = {k: v for k, v in checked.items() if k not in settings}
    return with_settings(cfg, {**{k: v for k, v in checked.items() if k in settings},
                               "params": {**cfg.strategy.params, **params}})


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """Turn `--set key=value` strings into a dict (values are coerced later by `coerce`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        out[key.strip()] = value.strip()
    return out
