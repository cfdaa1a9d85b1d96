"""The sections of a run's configuration: small frozen dataclasses, one per part of a run,
each field with its default and a docstring (the reference pages are made from them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class SyntheticTask:
    """The synthetic task's generator (lossbench/tasks/synthetic.py)."""

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


@dataclass(frozen=True, kw_only=True)
class FileTask:
    """A data file: MovieLens (`dataset`) or your own interactions file (`data`)."""

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


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """The data: which task, its parts' settings, and what every task shares."""

    name: str = "synthetic"
    """`synthetic` (generated, fast), `movielens` or `interactions` (your own file, `data`).
    Flat key: `task`."""
    synthetic: SyntheticTask = field(default_factory=lambda: SyntheticTask())
    file: FileTask = field(default_factory=lambda: FileTask())
    label_noise: float = 0.0
    """Any task: fraction of training targets replaced by uniformly random items, drawn from
    the data seed (paired runs share it); validation and test stay clean."""
    max_len: int = 50
    """Longest history the model sees for one prediction."""
    train_stride: int = 0
    """movielens, interactions: training windows of max_len + 1 items start every
    `train_stride` items (0 = max_len: no overlap); each target is trained once, in the
    window where it sees the most history (lossbench.tasks.movielens, step 6)."""


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The sequence encoder (lossbench/training/models.py)."""

    name: str = "sasrec"
    """Sequence encoder: `sasrec` (causal Transformer) or `gru` (GRU4Rec). Flat key:
    `model`."""
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
    item_bias: bool = False
    """A learned score bias per item added to the dot product (BERT4Rec's output bias):
    scores = h . e_i + c_i, c initialised at 0. It can carry item popularity, which the
    dot product alone must otherwise encode in the embeddings."""


@dataclass(frozen=True, kw_only=True)
class LossesConfig:
    """The two losses (lossbench/training/losses.py): L_main's smoothing, L_aux's kind and
    curriculum."""

    label_smoothing: float = 0.0
    """Label smoothing of L_main: 1 - eps on the target, eps spread evenly over all items
    (training/losses.py, next_item_ce); 0 = plain cross-entropy. Validation and test losses
    stay plain cross-entropy."""
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


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """The optimiser and its learning-rate schedule (lossbench/training/trainer.py)."""

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


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The loop: batches, epochs, early stopping, evaluation."""

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
    exclude_seen: bool = False
    """Remove items already in the history from the ranking at evaluation."""


@dataclass(frozen=True, kw_only=True)
class StrategyConfig:
    """How L_main and L_aux become one objective (lossbench/strategies/)."""

    name: str = "plain"
    """How L_main and L_aux become one objective: a registered strategy (`lossbench
    strategies` lists them), a group (`all`, `builtins`) or a plugin `module:Class`. Flat
    key: `strategy`."""
    b: float = 8.9
    """Flood level: L~ = |L - b| + b for flooded strategies (X-flood, X-iflood), unless the
    weighting has its own level (reweight's b_reweight). The default suits the default
    synthetic task; choose it for yours with sweep-b."""
    b_example: float = 4.0
    """Flood level of example flooding (X-iflood), on the scale of ONE L_main example (not of
    the weighted total); negative = use b. The default (about 0.9 x plain's mean L_main at its
    best epoch) suits the default synthetic task."""
    shared_only: bool = False
    """Gradient-combining strategies (gcs, pcgrad, metabalance, ...) combine the two
    gradients only over the parameters both losses reach, as their papers define them on
    shared parameters; a parameter only L_main reaches (`item_bias`) gets L_main's gradient
    alone, one only L_aux reaches L_aux's (training/trainer.py, train_step). false = every
    parameter takes part, a loss that does not reach it giving a zero gradient (lossbench's
    rule before this setting)."""
    flood_target: str = "total"
    """What batch flooding (X-flood) floods: `total`, the weighted total, L = |w(L_main,
    L_aux) - b| + b (Ishida et al.; lossbench's rule before this setting); `main`, L_main
    alone before the weighting combines it, L = w(|L_main - b| + b, L_aux); `aux`, L_aux
    alone, L = w(L_main, |L_aux - b| + b). b is on the scale of what floods; `train_loss` is
    then the weighted total of the flooded term. A gradient strategy gets the flooded loss's
    gradient with its sign flipped below b. Example flooding (X-iflood) and AdaFlood
    (X-adaflood) flood L_main's examples by definition: with them, another value than `total`
    is an error (strategies/objective.py)."""
    params: dict = field(default_factory=dict)
    """Strategy parameters by name (alpha, lam, w, ...: each declared, with its type, range
    and default, by a strategy in the registry, lossbench/strategies/). In a config file or
    on the command line they are plain keys (`alpha = 0.1`, `--alpha 0.1`). A run's config
    holds exactly its own strategy's parameters."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One run: its sections, its seed and its device. Sections are built by calling their
    class when the RunConfig is made (the lambdas look the class up then), so a test can
    extend a section with a new setting."""

    task: TaskConfig = field(default_factory=lambda: TaskConfig())
    model: ModelConfig = field(default_factory=lambda: ModelConfig())
    losses: LossesConfig = field(default_factory=lambda: LossesConfig())
    optim: OptimConfig = field(default_factory=lambda: OptimConfig())
    train: TrainConfig = field(default_factory=lambda: TrainConfig())
    strategy: StrategyConfig = field(default_factory=lambda: StrategyConfig())
    seed: int = 0
    """Seed of this run; data, weights and batch order are derived from it (see seeds.py)."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda`."""
