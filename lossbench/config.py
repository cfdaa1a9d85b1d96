"""Every setting of a run, in one frozen dataclass, and the two layers that fill it.

Layer 1 is an `experiments/*.toml` file (flat `key = value` pairs, or grouped in tables whose
names are ignored; a path, or the name of a file bundled with lossbench such as `ml-100k`:
`lossbench.bundled.resolve_config`), layer 2 the command line. Nothing else changes a setting:
no per-task or per-model defaults files. An unknown key, a wrong type or an out-of-range value
raises `ConfigError` naming the key (and the file).

    cfg = load_config("experiments/synthetic.toml", {"strategy": "flood", "b": 0.1})
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lossbench.bundled import resolve_config
from lossbench.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One run: task, model, auxiliary loss, optimiser, strategy and seed."""

    # --- task -------------------------------------------------------------------------
    task: str = "synthetic"
    """`synthetic` (generated, fast), `movielens` or `interactions` (your own file, `data`)."""
    n_items: int = 150
    """synthetic: size of the item catalogue."""
    n_train_users: int = 800
    """synthetic: users (one sequence each) in the training split."""
    n_val_users: int = 1000
    """synthetic: held-out users for validation (clean targets)."""
    n_test_users: int = 1000
    """synthetic: held-out users for test (clean targets)."""
    seq_len: int = 10
    """synthetic: items of history before the target."""
    noise: float = 0.9
    """synthetic: fraction of training targets replaced by uniformly random items."""
    taste_prob: float = 0.2
    """synthetic: chance that the next item comes from the user's taste (else a Markov step)."""
    taste_dim: int = 8
    """synthetic: dimension of the latent user and item vectors."""
    taste_scale: float = 2.0
    """synthetic: inverse temperature of the taste softmax (higher = more predictable)."""
    markov_fanout: int = 1
    """synthetic: successors each item can step to in the Markov part."""
    dataset: str = "ml-100k"
    """movielens: `ml-100k` or `ml-1m`."""
    data_dir: str = ""
    """movielens: data folder; empty = $LOSSBENCH_DATA_DIR or ~/.cache/lossbench."""
    data: str = ""
    """interactions: the file (CSV/TSV with a header, or a RecBole .inter atomic file)."""
    user_col: str = ""
    """interactions: the user id column (empty = found by its name: user_id, userId, user)."""
    item_col: str = ""
    """interactions: the item id column (empty = item_id, itemId, movieId, item)."""
    time_col: str = ""
    """interactions: the timestamp column (empty = timestamp, time, ts)."""
    rating_col: str = ""
    """interactions: the rating column (empty = rating if present; optional)."""
    min_rating: float = 0.0
    """movielens, interactions: keep ratings >= this (0 keeps all, as RecBole's default)."""
    k_core: int = 0
    """movielens, interactions: iteratively keep users and items with >= k interactions
    (0 = off)."""
    label_noise: float = 0.0
    """Any task: fraction of training targets replaced by uniformly random items, drawn from
    the data seed (paired runs share it); validation and test stay clean."""
    max_len: int = 50
    """Longest history the model sees for one prediction."""
    train_stride: int = 0
    """movielens, interactions: training windows of max_len + 1 items start every
    `train_stride` items (0 = max_len: no overlap); each target is trained once, in the
    window where it sees the most history (lossbench.tasks.movielens, step 6)."""
    exclude_seen: bool = False
    """Remove items already in the history from the ranking at evaluation."""

    # --- model --------------------------------------------------------------------------
    model: str = "sasrec"
    """Sequence encoder: `sasrec` (causal Transformer) or `gru` (GRU4Rec)."""
    hidden: int = 64
    """Width of item embeddings and hidden states."""
    n_layers: int = 1
    """Transformer blocks (sasrec) or GRU layers (gru)."""
    n_heads: int = 1
    """Attention heads (sasrec)."""
    inner: int = 128
    """Width of the feed-forward layer inside a Transformer block (sasrec)."""
    dropout: float = 0.0
    """Dropout on embeddings, hidden states and (unless `attn_dropout` >= 0) attention."""
    attn_dropout: float = -1.0
    """Dropout on the attention probabilities (sasrec; RecBole's attn_dropout_prob);
    negative = `dropout`."""
    label_smoothing: float = 0.0
    """Label smoothing of L_main: 1 - eps on the target, eps spread evenly over all items
    (lossbench.losses.next_item_ce); 0 = plain cross-entropy. Validation and test losses
    stay plain cross-entropy."""
    item_bias: bool = False
    """A learned score bias per item added to the dot product (BERT4Rec's output bias):
    scores = h . e_i + c_i, c initialised at 0. It can carry item popularity, which the
    dot product alone must otherwise encode in the embeddings."""

    # --- auxiliary loss -----------------------------------------------------------------
    aux: str = "supcon"
    """`supcon` (supervised contrastive curriculum loss) or `none` (L_aux = 0)."""
    aux_tau_start: float = 1.0
    """SupCon temperature at epoch 1 (easy: soft similarities)."""
    aux_tau_end: float = 0.5
    """SupCon temperature from `aux_warmup` epochs on (hard: sharp similarities)."""
    aux_warmup: int = 50
    """Epochs over which the temperature falls linearly from start to end."""
    aux_mask_prob: float = 0.2
    """Augmentation: chance that a history item is replaced by padding in a view."""

    # --- optimisation -------------------------------------------------------------------
    optimizer: str = "sgd"
    """`sgd` (with momentum) or `adam`."""
    lr: float = 0.5
    """Learning rate (of epoch 1 under a schedule)."""
    lr_schedule: str = "constant"
    """`constant`, or `cosine`: epoch e (1-based) of `epochs` trains at
    lr * (1 + cos(pi * (e - 1) / epochs)) / 2, from lr down towards 0 (cosine annealing,
    Loshchilov & Hutter 2017, without restarts; set `epochs` to the intended length)."""
    lr_warmup: int = 0
    """Epochs of linear warm-up (Goyal et al., 2017): step k of the run (1-based, over all
    epochs) trains at its epoch's rate times min(1, k / (lr_warmup * steps per epoch)), so
    the rate climbs from about 0 to the schedule's over the first `lr_warmup` epochs; 0 =
    none. Post-LN Transformers (SASRec here) need it to train at higher rates."""
    momentum: float = 0.9
    """SGD momentum (ignored by adam)."""
    weight_decay: float = 0.0
    """L2 weight decay."""
    batch_size: int = 200
    """Training sequences per optimisation step."""
    epochs: int = 100
    """Training epochs (passes over the training split)."""
    patience: int = 0
    """Stop after this many epochs without a better `best_by` (0 = train all epochs)."""
    best_by: str = "val_loss"
    """Validation metric that picks the best epoch: val_loss, val_acc, val_hr10, val_ndcg10."""
    eval_batch_size: int = 2048
    """Sequences per forward pass at evaluation."""

    # --- strategy -----------------------------------------------------------------------
    strategy: str = "plain"
    """How L_main and L_aux become one objective: a registered strategy (`lossbench
    strategies` lists them), a group (`all`, `builtins`) or a plugin `module:Class`."""
    b: float = 8.9
    """Flood level: L~ = |L - b| + b for flooded strategies (X-flood, X-iflood), unless the
    weighting has its own level (reweight's b_reweight). The default suits the default
    synthetic task; choose it for yours with sweep-b."""
    b_example: float = 4.0
    """Flood level of example flooding (X-iflood), on the scale of ONE L_main example (not of
    the weighted total); negative = use b. The default (about 0.9 x plain's mean L_main at its
    best epoch) suits the default synthetic task."""
    params: dict = field(default_factory=dict)
    """Strategy parameters by name (alpha, lam, w, ...: each declared, with its type, range
    and default, by a strategy in the registry, lossbench/strategies/). In a config file or
    on the command line they are plain keys (`alpha = 0.1`, `--alpha 0.1`). A run's config
    holds exactly its own strategy's parameters."""

    # --- run ----------------------------------------------------------------------------
    seed: int = 0
    """Seed of this run; data, weights and batch order are derived from it (see seeds.py)."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda`."""


FIELD_TYPES: dict[str, type] = {f.name: type(f.default) for f in fields(RunConfig)
                                 if f.name != "params"}
"""Settings that are RunConfig fields (strategy parameters live in `params`)."""
CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("synthetic", "movielens", "interactions"),
    "dataset": ("ml-100k", "ml-1m"),
    "model": ("sasrec", "gru"),
    "aux": ("supcon", "none"),
    "optimizer": ("sgd", "adam"),
    "lr_schedule": ("constant", "cosine"),
    "best_by": ("val_loss", "val_acc", "val_hr10", "val_ndcg10"),
    "device": ("auto", "cpu", "cuda"),
}
POSITIVE = ("n_items", "n_train_users", "n_val_users", "n_test_users", "seq_len", "taste_dim",
            "markov_fanout", "max_len", "hidden", "n_layers", "n_heads", "inner",
            "aux_tau_start", "aux_tau_end", "lr", "batch_size", "epochs", "eval_batch_size")
NON_NEGATIVE = ("min_rating", "k_core", "train_stride", "aux_warmup", "lr_warmup", "momentum",
                "weight_decay", "patience", "b", "seed", "taste_scale")
UNIT_INTERVAL = ("noise", "taste_prob", "dropout", "aux_mask_prob", "label_noise",
                 "label_smoothing")


def strategy_params() -> dict:
    """Every registered strategy parameter by name (imported here, not at module level:
    the strategies import this module)."""
    from lossbench.strategies import all_params

    return all_params()


def coerce(key: str, value: Any, source: str = "") -> Any:
    """Return `value` as the type of setting `key` (a RunConfig field or a registered
    strategy parameter, checked against its range); raise ConfigError for an unknown key
    (suggesting the closest known keys: `close_keys`), a wrong type or (parameters) a value
    out of range."""
    where = f" in {source}" if source else ""
    if key not in FIELD_TYPES:
        params = strategy_params()
        if key in params:
            return params[key].check(value, f" ({source})" if source else "")
        close = close_keys(key, [*FIELD_TYPES, *params])
        hint = (f"did you mean {' or '.join(repr(k) for k in close)}?" if close else
                "the settings are RunConfig's fields (lossbench/config.py), the strategy "
                "parameters those `lossbench strategies` lists")
        raise ConfigError(f"unknown setting '{key}'{where}; {hint}")
    want = FIELD_TYPES[key]
    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif want is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif want is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif want is str and isinstance(value, str):
        return value
    raise ConfigError(f"setting '{key}'{where} must be {want.__name__}, got {value!r}")


def close_keys(key: str, known: list[str]) -> list[str]:
    """The known keys to suggest for the unknown `key`: the key itself written lower-case
    with underscores (`--set Time-Col` -> `time_col`) if that is known, else at most three
    keys closest to it by difflib's ratio (>= 0.6), best first (`epoch` -> `epochs`)."""
    plain = key.lower().replace("-", "_")
    return [plain] if plain in known else difflib.get_close_matches(plain, known, 3, 0.6)


def validate(cfg: RunConfig, source: str = "") -> RunConfig:
    """Check ranges and choices of every field; return `cfg` unchanged or raise ConfigError."""
    where = f" (in {source})" if source else ""
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"unknown {key} '{getattr(cfg, key)}'{where}; "
                              f"choose one of: {', '.join(allowed)}")
    from lossbench.strategies import expand

    expand([cfg.strategy])  # a ConfigError naming the strategy when it is unknown
    for key, value in cfg.params.items():
        coerce(key, value, source)
    for key in POSITIVE + NON_NEGATIVE + UNIT_INTERVAL:
        value = getattr(cfg, key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}{where}")
    for key in POSITIVE:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(cfg, key)}{where}")
    for key in NON_NEGATIVE:
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)}{where}")
    for key in UNIT_INTERVAL:
        if not 0.0 <= getattr(cfg, key) <= 1.0:
            raise ConfigError(f"{key} must be in [0, 1], got {getattr(cfg, key)}{where}")
    if not cfg.attn_dropout <= 1.0:
        raise ConfigError(f"attn_dropout must be <= 1 (negative = dropout), got "
                          f"{cfg.attn_dropout}{where}")
    if cfg.train_stride > cfg.max_len:
        raise ConfigError(f"train_stride ({cfg.train_stride}) must be <= max_len "
                          f"({cfg.max_len}): a larger stride would skip targets{where}")
    if cfg.hidden % cfg.n_heads != 0:
        raise ConfigError(f"hidden ({cfg.hidden}) must be divisible by n_heads ({cfg.n_heads})")
    if cfg.task == "synthetic" and cfg.batch_size > cfg.n_train_users:
        raise ConfigError(f"batch_size ({cfg.batch_size}) is larger than the training split "
                          f"(n_train_users = {cfg.n_train_users}){where}")
    if cfg.task == "interactions" and not cfg.data:
        raise ConfigError(f"--task interactions needs a file: --data PATH{where}")
    return cfg


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file into a flat {key: value} dict (tables are flattened, names ignored)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for sub_key, sub_value in items:
            if isinstance(sub_value, dict):
                raise ConfigError(f"config file {path}: nested table '{key}.{sub_key}' "
                                  "is not allowed; use flat key = value pairs")
            if sub_key in flat:
                raise ConfigError(f"config file {path}: '{sub_key}' is set twice")
            flat[sub_key] = sub_value
    return flat


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None
                ) -> RunConfig:
    """Defaults, then the TOML file `path` (if any: a file, or the name of a bundled one,
    `bundled.resolve_config`), then `overrides`; validated."""
    cfg = RunConfig()
    source = ""
    if path is not None:
        path = resolve_config(path)
        source = str(path)
        cfg = apply(cfg, read_toml(path), source)
    if overrides:
        cfg = apply(cfg, overrides, "the command line")
    return validate(cfg, source)


def apply(cfg: RunConfig, values: dict[str, Any], source: str) -> RunConfig:
    """`cfg` with `values` set: RunConfig fields directly, strategy parameters into
    `params`; each value coerced and checked (`coerce`)."""
    if "params" in values:
        raise ConfigError(f"'params' is not a setting ({source}); set strategy parameters "
                          "by name (alpha = 0.1)")
    checked = {k: coerce(k, v, source) for k, v in values.items()}
    fields_ = {k: v for k, v in checked.items() if k in FIELD_TYPES}
    params = {k: v for k, v in checked.items() if k not in FIELD_TYPES}
    return dataclasses.replace(cfg, **fields_, params={**cfg.params, **params})


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """Turn `--set key=value` strings into a dict (values are coerced later by `coerce`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        out[key.strip()] = value.strip()
    return out
