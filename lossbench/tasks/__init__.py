"""Tasks: data for next-item prediction, as tensors the trainer can batch.

Item ids run from 1 to n_items; 0 is padding. Histories are left-padded, so position -1 is
always the point of prediction.

- `Task.train.inputs` [N, T] histories, `Task.train.targets` [N, T]: the next item at every
  position (0 = no target there). Every non-zero target is one training example.
- `Task.val` / `Task.test`: `inputs` [M, T], `targets` [M], the item that follows the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from lossbench.config import RunConfig


@dataclass(frozen=True)
class Split:
    """Histories and their targets (see the module docstring for the shapes)."""

    inputs: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True)
class Task:
    """A generated or loaded data set, shared by every strategy of a paired comparison."""

    name: str
    n_items: int
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)


def build_task(cfg: RunConfig) -> Task:
    """The task named by `cfg.task`, built from the data seed of `cfg.seed`."""
    if cfg.task == "synthetic":
        from lossbench.tasks.synthetic import make_synthetic

        return make_synthetic(cfg)
    from lossbench.tasks.movielens import make_movielens

    return make_movielens(cfg)


def task_key(cfg: RunConfig) -> tuple:
    """Settings that determine the data: runs with equal keys can share one built Task."""
    if cfg.task == "synthetic":
        return ("synthetic", cfg.seed, cfg.n_items, cfg.n_train_users, cfg.n_val_users,
                cfg.n_test_users, cfg.seq_len, cfg.noise, cfg.taste_prob, cfg.taste_dim,
                cfg.taste_scale, cfg.markov_fanout)
    return ("movielens", cfg.dataset, cfg.data_dir, cfg.min_rating, cfg.k_core, cfg.max_len)
