"""Every setting of a run: a configuration in sections, and the two layers that fill it.

    cfg = load_config("experiments/synthetic.toml", {"strategy": "flood", "b": 0.1})
    cfg.model.hidden, cfg.optim.lr, cfg.strategy.b     # each part of a run reads its section

`RunConfig` is a few small frozen dataclasses: `task` (with its `synthetic` and `file` parts),
`model`, `losses`, `optim`, `train`, `strategy`, plus `seed` and `device`. Each part of a run
takes only its own section (`build_model(n_items, max_len, cfg.model)`,
`make_optimizer(params, cfg.optim)`, `build_task(cfg.task, seed)`).

Every setting also has a flat key, its field's name (`hidden`, `lr`, `b`), except the four
whose field is a section's `name`: `task`, `model`, `strategy` (and `aux`, the kind of L_aux,
in `losses`). Flat keys are what a user types: `key = value` in a TOML file, `--set
key=value`, the CLI's options, the Python API's keyword arguments, and config.json. A TOML
table may name the section it fills (`[model]` then `dropout = 0.4`).

Layer 1 is a TOML file (a path, or the name of a file bundled with lossbench such as
`ml-100k`: `lossbench.bundled.resolve_config`), layer 2 the command line. Nothing else
changes a setting: no per-task or per-model defaults files. The strategy is resolved first
(a plugin named in the file or on the command line is imported), so its parameters are
known keys too. An unknown key, a wrong type or an out-of-range value raises `ConfigError`
naming the key (and the file). Every value is read by one checker, `Param.check`: config
fields are `Param`s as strategy parameters are (`setting_params`).

A run's identity (its folder name, `identity`) covers only the settings that differ from
their defaults, so a new setting whose default keeps today's behaviour renames nothing.
"""

from lossbench.config.keys import (
    CHOICES,
    STRATEGY_KEYS,
    flat,
    identity,
    setting_params,
    setting_paths,
    with_settings,
)
from lossbench.config.load import (
    apply,
    coerce,
    load_config,
    parse_set,
    read_toml,
    resolve_strategy,
    strategy_params,
    validate,
)
from lossbench.config.sections import (
    FileTask,
    LossesConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    StrategyConfig,
    SyntheticTask,
    TaskConfig,
    TrainConfig,
)

__all__ = ["CHOICES", "STRATEGY_KEYS", "FileTask", "LossesConfig", "ModelConfig", "OptimConfig",
           "RunConfig", "StrategyConfig", "SyntheticTask", "TaskConfig", "TrainConfig", "apply",
           "coerce", "flat", "identity", "load_config", "parse_set", "read_toml",
           "resolve_strategy", "setting_params", "setting_paths", "strategy_params", "validate",
           "with_settings"]
