"""AdaFlood's held-out losses: K auxiliary models, each trained on the other folds of the
training split, and the loss of every training target under the model that did not train on
it; computed once per seed and settings, and cached on disk.

    table = heldout_losses(cfg, task, device, SingleModel)
    table.losses      # [N, T] like task.train.targets: each target's held-out loss (0: none)
    table.summary()   # what summary.json says of them (cost, cache hit)

AdaFlood is Bae, Ren, Ahmed, Tung, Sutherland & Oliveira, "AdaFlood: Adaptive Flood
Regularization", TMLR 2024 (code: github.com/BorealisAI/adaflood). What lossbench follows, and
what it decides where the paper leaves a choice open:

1. **Folds.** The rows of the training split (sequences; all targets of a row fall in one
   fold) are dealt into K = `adaflood_folds` folds (default 2): row `perm[j]` goes to fold
   `j mod K`, with `perm` a random permutation drawn from the data seed (`fold_of`), so fold
   sizes differ by at most one. The authors' code cuts contiguous index ranges and defaults
   to 5 auxiliary models; 2 is the cheapest held-out split (two models on half the rows each
   cost about one run).
2. **Auxiliary models.** Model k is the run's model trained as the run is (optimiser,
   schedule, batch size, patience, `best_by`) with L_main alone (`plain`, `aux = none`: L_aux
   is not what floods) on the rows of the other folds, for `adaflood_aux_epochs` epochs (0 =
   the run's `epochs`); the weights of its best validation epoch are kept (the validation
   split is clean and never trained on), as the authors' code keeps its best checkpoint. It
   goes through the one training loop (loop.train_runs) with the engine the caller gives
   (`trainer.SingleModel`, passed in because trainer imports this module).
3. **Seeds.** Model k starts from the run's initial weights (the init seed) and draws its
   batches from the run's batch seed over its own rows; the folds come from the data seed
   (`seeds.fold_generator`). Neither the strategy nor gamma enters, so every strategy of a
   seed gets the same auxiliary models: the runs stay paired.
4. **Held-out losses.** Each row of fold k is evaluated by model k (eval mode, no dropout):
   each target's L_main per-example loss as training computes it (`next_item_ce`, with label
   smoothing when set). gamma is not applied here: the objective turns a batch's held-out
   losses into levels theta_i = -log((1 - gamma) exp(-l_i) + gamma) (strategies/flooding.py,
   `adaflood_level`).
5. **Cache.** The table is stored in `cache_dir()` (`$LOSSBENCH_CACHE_DIR/adaflood`, else
   `$XDG_CACHE_HOME/lossbench/adaflood`, else `~/.cache/lossbench/adaflood`) as `<key>.pt`.
   The key is a SHA-256 of what determines the models: their own run configuration
   (`aux_config`: every setting of the run but the strategy section and L_aux's, epochs =
   their epochs, the device type), K, and a digest of the data (training and validation
   tensors). gamma is not in it: a run with another gamma reuses the models; another K or
   another number of epochs trains new ones. torch's thread count is not in it either (the
   runs of a seed must share the models). A process holds `<key>.lock` (fcntl, released if
   it dies) while it looks the table up or trains it, so parallel workers of one seed train
   the models once; the file is written to a temporary file, synced and renamed over the
   target, so a killed process leaves a whole file or none. A file that cannot be read, or
   holds another key, is trained again.
6. **Cost.** `HeldOut.summary()` goes into the run's summary.json: `adaflood_aux_seconds`
   (the models' training time, stored with them, so a cache hit reports what they cost),
   `adaflood_cache_hit`, `adaflood_cache` (the file) and `adaflood_aux_best_epochs`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lossbench.config import LossesConfig, RunConfig, StrategyConfig, flat
from lossbench.errors import ConfigError
from lossbench.files import write_atomic
from lossbench.seeds import fold_generator, run_seeds, seed_everything
from lossbench.strategies import build_objective, run_params
from lossbench.tasks import Split, Task
from lossbench.training.loop import RunState, train_runs
from lossbench.training.losses import next_item_ce
from lossbench.training.models import build_model

CACHE_FORMAT = "lossbench-adaflood-1"
"""Stored in every cache file and part of its key: a change of how the models are trained
changes it."""
FOLD_TAG = "adaflood-folds"
"""The tag of the fold generator (`seeds.fold_generator`)."""


@dataclass
class HeldOut:
    """The held-out losses of a run's training targets (`losses`, [N, T], float32, on the
    CPU), the fold of each row (`folds`, [N]), what training the auxiliary models cost
    (`seconds`), their best epochs, the cache file and whether it was found there."""

    losses: Tensor
    folds: Tensor
    seconds: float
    best_epochs: list[int]
    path: Path
    cache_hit: bool

    def summary(self) -> dict[str, Any]:
        """The keys this adds to the run's summary.json."""
        return {"adaflood_aux_seconds": self.seconds, "adaflood_cache_hit": self.cache_hit,
                "adaflood_cache": str(self.path), "adaflood_aux_best_epochs": self.best_epochs}


def fold_of(n_rows: int, folds: int, data_seed: int) -> Tensor:
    """The fold (0..folds-1) of each of `n_rows` training rows: a permutation drawn from the
    data seed, dealt round-robin (row perm[j] -> fold j mod folds)."""
    if folds > n_rows:
        raise ConfigError(f"adaflood_folds ({folds}) is larger than the training split "
                          f"({n_rows} rows)")
    order = torch.randperm(n_rows, generator=fold_generator(data_seed, FOLD_TAG))
    out = torch.empty(n_rows, dtype=torch.long)
    out[order] = torch.arange(n_rows) % folds
    return out


def aux_config(cfg: RunConfig, epochs: int, device_type: str) -> RunConfig:
    """The run configuration of the auxiliary models: `cfg` with the default strategy
    section (they train plain, whatever the run's strategy), L_main alone (`aux = none`,
    L_aux's settings at their defaults), `epochs` epochs (0: the run's) and the device
    type."""
    return dataclasses.replace(
        cfg, strategy=StrategyConfig(),
        losses=LossesConfig(label_smoothing=cfg.losses.label_smoothing, aux="none"),
        train=dataclasses.replace(cfg.train, epochs=epochs or cfg.train.epochs),
        device=device_type)


def data_digest(task: Task) -> str:
    """SHA-256 of the tensors the auxiliary models train and select on (training and
    validation splits) and of the catalogue size."""
    digest = hashlib.sha256(str(task.n_items).encode())
    for tensor in (task.train.inputs, task.train.targets, task.val.inputs, task.val.targets):
        digest.update(f"{tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_key(aux_cfg: RunConfig, folds: int, task: Task) -> str:
    """The cache key of the auxiliary models (module docstring, point 5)."""
    material = {"format": CACHE_FORMAT, "settings": flat(aux_cfg), "folds": folds,
                "data": data_digest(task)}
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def cache_dir() -> Path:
    """Where the tables are kept: `$LOSSBENCH_CACHE_DIR/adaflood`, else
    `$XDG_CACHE_HOME/lossbench/adaflood`, else `~/.cache/lossbench/adaflood`."""
    root = os.environ.get("LOSSBENCH_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lossbench"
    return Path(root).expanduser() / "adaflood"


def heldout_losses(cfg: RunConfig, task: Task, device: torch.device,
                   engine: Callable[..., Any]) -> HeldOut:
    """The held-out losses of the run `cfg` (an `X-adaflood` run): from the cache, or from
    auxiliary models trained now with `engine` (trainer.SingleModel) and then cached."""
    params = run_params(cfg.strategy.name, cfg.strategy.params)
    folds = int(params["adaflood_folds"])
    models_cfg = aux_config(cfg, int(params["adaflood_aux_epochs"]), device.type)
    key = cache_key(models_cfg, folds, task)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.pt"
    with open(folder / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        stored = read_cache(path, key, tuple(task.train.targets.shape))
        if stored is not None:
            return HeldOut(**stored, path=path, cache_hit=True)
        started = time.perf_counter()
        assignment = fold_of(len(task.train), folds, run_seeds(cfg.seed).data)
        losses, best_epochs = train_folds(models_cfg, task, assignment, folds, device, engine)
        seconds = time.perf_counter() - started
        write_cache(path, {"format": CACHE_FORMAT, "key": key, "losses": losses,
                           "folds": assignment, "seconds": seconds, "best_epochs": best_epochs,
                           "settings": json.dumps(flat(models_cfg), default=str)})
        return HeldOut(losses, assignment, seconds, best_epochs, path, cache_hit=False)


def train_folds(aux_cfg: RunConfig, task: Task, assignment: Tensor, folds: int,
                device: torch.device, engine: Callable[..., Any]) -> tuple[Tensor, list[int]]:
    """For each fold k: train model k on the rows of the other folds (`train_fold`), then
    evaluate the rows of fold k with it (`heldout_of`). Returns the [N, T] table and the
    models' best epochs."""
    out = torch.zeros(task.train.targets.shape, dtype=torch.float32)
    best_epochs = []
    for k in range(folds):
        held = assignment == k
        model, best_epoch = train_fold(aux_cfg, task, ~held, device, engine)
        out[held] = heldout_of(model, Split(task.train.inputs[held], task.train.targets[held]),
                               aux_cfg, device)
        best_epochs.append(best_epoch)
    return out, best_epochs


def train_fold(aux_cfg: RunConfig, task: Task, rows: Tensor, device: torch.device,
               engine: Callable[..., Any]) -> tuple[nn.Module, int]:
    """One auxiliary model: the run's initial weights trained with `aux_cfg` on the training
    rows `rows` (a mask) by the one loop; returns it with its best validation epoch's
    weights, and that epoch."""
    sub = dataclasses.replace(task, train=Split(task.train.inputs[rows],
                                                task.train.targets[rows]))
    seed_everything(run_seeds(aux_cfg.seed).init)  # the run's weights (trainer.init_model)
    model = build_model(task.n_items, aux_cfg.task.max_len, aux_cfg.model).to(device)
    run = RunState(aux_cfg, build_objective("plain", {}))
    train_runs([run], engine(run, model, sub, device), sub, device, lambda *_: None,
               lambda *_: None)  # ends with the best epoch's weights loaded into `model`
    if run.best is None or run.best.state is None:
        raise ConfigError("an AdaFlood auxiliary model diverged in its first epoch; lower "
                          "lr, or set adaflood_aux_epochs")
    return model, run.best.epoch


def heldout_of(model: nn.Module, split: Split, aux_cfg: RunConfig, device: torch.device
               ) -> Tensor:
    """The per-target L_main of `split` under `model` in eval mode ([rows, T], 0 where there
    is no target), in batches of `eval_batch_size` rows."""
    model.eval()
    out = torch.zeros(split.targets.shape, dtype=torch.float32)
    size = aux_cfg.train.eval_batch_size
    with torch.no_grad():
        for start in range(0, len(split), size):
            inputs = split.inputs[start:start + size].to(device)
            targets = split.targets[start:start + size].to(device)
            has_target = targets > 0
            hidden = model(inputs)
            ce = next_item_ce(model.logits(hidden[has_target]), targets[has_target],
                              aux_cfg.losses.label_smoothing).per_example
            chunk = torch.zeros(targets.shape, dtype=torch.float32, device=device)
            chunk[has_target] = ce.float()
            out[start:start + size] = chunk.cpu()
    return out


def read_cache(path: Path, key: str, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """A stored table's fields for `HeldOut`, or None when the file is missing, unreadable,
    or holds another key or shape."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True)
        if (state.get("format") != CACHE_FORMAT or state.get("key") != key
                or tuple(state["losses"].shape) != shape):
            return None
        return {"losses": state["losses"], "folds": state["folds"],
                "seconds": float(state["seconds"]),
                "best_epochs": [int(e) for e in state["best_epochs"]]}
    except Exception:  # noqa: BLE001 - any unreadable cache file is trained again
        return None


def write_cache(path: Path, state: dict[str, Any]) -> None:
    """`torch.save(state)` to `path` atomically (`files.write_atomic`): readers see the old
    file, or the whole new one."""
    write_atomic(path, lambda handle: torch.save(state, handle))
