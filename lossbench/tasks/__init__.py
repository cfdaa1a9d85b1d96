"""Tasks: data for next-item prediction, as tensors the trainer can batch.

Item ids run from 1 to n_items; 0 is padding. Histories are left-padded, so position -1 is
always the point of prediction.

- `Task.train.inputs` [N, T] histories, `Task.train.targets` [N, T]: the next item at every
  position (0 = no target there). Every non-zero target is one training example.
- `Task.val` / `Task.test`: `inputs` [M, T], `targets` [M], the item that follows the history.
  (For MovieLens and interactions files, val.inputs and test.inputs are two views of one
  [M, T + 1] array, so they need not be contiguous.)

Tasks: `synthetic` (generated), `movielens` (ml-100k, ml-1m), `interactions` (any file; the
last two share one pipeline). `build_task` adds `label_noise` to any of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lossbench.config import TaskConfig
from lossbench.seeds import run_seeds
from lossbench.tasks.base import Split, Task
from lossbench.tasks.synthetic import make_synthetic

__all__ = ["Split", "Task", "build_task", "data_fingerprint", "task_key", "with_label_noise"]


def build_task(cfg: TaskConfig, seed: int) -> Task:
    """The task named by `cfg.name`, built from the data seed of the run seed `seed`, with
    `cfg.label_noise` applied to its training targets (`with_label_noise`)."""
    if cfg.name == "synthetic":
        task = make_synthetic(cfg.synthetic, seed)
    elif cfg.name == "movielens":  # files are read with pyarrow, imported on first use
        from lossbench.tasks.movielens import make_movielens

        task = make_movielens(cfg)
    else:
        from lossbench.tasks.interactions import make_interactions

        task = make_interactions(cfg)
    return with_label_noise(task, cfg.label_noise, run_seeds(seed).data)


def with_label_noise(task: Task, fraction: float, data_seed: int) -> Task:
    """`task` with round(fraction * n) of its n training targets (the non-zero entries of
    train.targets), chosen uniformly without replacement, replaced by items drawn uniformly
    from 1..n_items (a draw may equal the clean target), both from
    np.random.default_rng([data_seed, 1]). Validation and test are untouched; fraction 0
    returns `task` itself."""
    if fraction <= 0:
        return task
    targets = task.train.targets.numpy().copy()
    flat = targets.reshape(-1)
    rng = np.random.default_rng([data_seed, 1])
    n_noisy = int(round(fraction * np.count_nonzero(flat)))
    chosen = rng.choice(np.flatnonzero(flat), size=n_noisy, replace=False)
    flat[chosen] = rng.integers(1, task.n_items + 1, size=len(chosen))
    info = {**task.info, "label_noise": fraction, "n_label_noise_targets": len(chosen)}
    return replace(task, train=Split(task.train.inputs, torch.from_numpy(targets)), info=info)


def task_key(cfg: TaskConfig, seed: int) -> tuple:
    """Settings that determine the data: runs with equal keys can share one built Task."""
    noise = (cfg.label_noise, seed) if cfg.label_noise > 0 else (0.0,)
    if cfg.name == "synthetic":
        return ("synthetic", seed, *dataclasses.astuple(cfg.synthetic), *noise)
    files = cfg.file
    if cfg.name == "movielens":
        return ("movielens", files.dataset, files.data_dir, files.min_rating, files.k_core,
                cfg.max_len, cfg.train_stride, *noise)
    return ("interactions", str(Path(files.data).expanduser().resolve()), files.user_col,
            files.item_col, files.time_col, files.rating_col, files.min_rating, files.k_core,
            cfg.max_len, cfg.train_stride, *noise)


def data_fingerprint(cfg: TaskConfig) -> dict:
    """What identifies the data, for config.json and the experiment hash (a changed file
    gives a new folder): {} for synthetic (the settings are the data); the ratings file's
    SHA-256 for movielens (found or downloaded as `build_task` does); for interactions the
    file's SHA-256 (its content, not its name) and the settings that preprocess it.
    DataError if the file cannot be read. The hash is computed once per process."""
    if cfg.name == "synthetic":
        return {}
    from lossbench.tasks.download import ratings_file
    from lossbench.tasks.interactions import file_digest, split_settings
    from lossbench.tasks.reader import open_layout

    files = cfg.file
    if cfg.name == "movielens":
        return {"sha256": file_digest(ratings_file(files.dataset, files.data_dir))}
    path = open_layout(files.data, files.user_col, files.item_col, files.time_col,
                       files.rating_col).path
    return {"sha256": file_digest(path), "user_col": files.user_col,
            "item_col": files.item_col, "time_col": files.time_col,
            "rating_col": files.rating_col, **split_settings(cfg)}
