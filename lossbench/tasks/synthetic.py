"""A generated next-item task with noisy training labels (the default task).

Generative model (all from one NumPy generator seeded with the run's data seed):

- item vectors v_i ~ N(0, I/d) and user vectors u ~ N(0, I), d = `taste_dim`;
- a user's taste is p_taste(i) = softmax_i(taste_scale * u . v_i);
- each item has `markov_fanout` successors with Dirichlet(1) weights: p_markov(.|prev);
- a sequence starts from the taste; each next item is drawn from the taste with probability
  `taste_prob`, else by a Markov step from the previous item;
- every user yields a sequence of seq_len + 1 items; training predicts every next item,
  validation and test (held-out users) the last one;
- each training target is replaced by a uniformly random item with probability `noise`
  (the label noise a model can memorise); validation and test targets are clean.

A model must infer the taste from the history and combine it with the last item. With heavy
label noise and a small training set, plain training memorises the noise: the training loss
falls towards 0 while the validation loss rises after its minimum, which is what flooding
is meant to counter.
"""

from __future__ import annotations

import numpy as np
import torch

from lossbench.config import SyntheticTask
from lossbench.seeds import run_seeds
from lossbench.tasks.base import Split, Task


def sample_world(rng: np.random.Generator, cfg: SyntheticTask) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors [n_items, d] and the Markov transition matrix [n_items, n_items]."""
    items = rng.normal(0.0, 1.0 / np.sqrt(cfg.taste_dim), size=(cfg.n_items, cfg.taste_dim))
    transition = np.zeros((cfg.n_items, cfg.n_items))
    fanout = min(cfg.markov_fanout, cfg.n_items)
    for i in range(cfg.n_items):
        successors = rng.choice(cfg.n_items, size=fanout, replace=False)
        transition[i, successors] = rng.dirichlet(np.ones(fanout))
    return items, transition


def sample_sequences(rng: np.random.Generator, cfg: SyntheticTask, items: np.ndarray,
                     transition: np.ndarray, n_users: int) -> np.ndarray:
    """[n_users, seq_len + 1] item indices (0-based), vectorised over users."""
    users = rng.normal(size=(n_users, cfg.taste_dim))
    logits = cfg.taste_scale * users @ items.T
    taste = np.exp(logits - logits.max(axis=1, keepdims=True))
    taste_cdf = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1)
    markov_cdf = np.cumsum(transition, axis=1)
    seqs = np.empty((n_users, cfg.seq_len + 1), dtype=np.int64)
    seqs[:, 0] = draw(rng, taste_cdf)
    for t in range(1, cfg.seq_len + 1):
        from_taste = draw(rng, taste_cdf)
        from_markov = draw(rng, markov_cdf[seqs[:, t - 1]])
        use_taste = rng.random(n_users) < cfg.taste_prob
        seqs[:, t] = np.where(use_taste, from_taste, from_markov)
    return seqs


def draw(rng: np.random.Generator, cdf: np.ndarray) -> np.ndarray:
    """One index per row of the row-wise CDF matrix `cdf` [n, k]."""
    u = rng.random((cdf.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), cdf.shape[1] - 1)


def make_synthetic(cfg: SyntheticTask, seed: int) -> Task:
    """Generate the task for the run seed `seed` (its data seed, from `run_seeds`).

    Item ids shift by one (0 is padding). Training: inputs [N, seq_len] are items 0..T-1 of
    each sequence and targets [N, seq_len] items 1..T, so every position is a prediction;
    each training target is independently replaced by a uniformly random item with
    probability `noise` (the inputs stay clean). Validation and test: inputs are the first
    seq_len items, the target [M] the clean item after them."""
    rng = np.random.default_rng(run_seeds(seed).data)
    items, transition = sample_world(rng, cfg)
    seqs = sample_sequences(rng, cfg, items, transition, cfg.n_train_users) + 1
    targets = seqs[:, 1:].copy()
    noisy = rng.random(targets.shape) < cfg.noise
    targets[noisy] = rng.integers(1, cfg.n_items + 1, size=int(noisy.sum()))
    train = Split(torch.from_numpy(seqs[:, :-1].copy()), torch.from_numpy(targets))
    held_out = []
    for n_users in (cfg.n_val_users, cfg.n_test_users):
        seqs = sample_sequences(rng, cfg, items, transition, n_users) + 1
        held_out.append(Split(torch.from_numpy(seqs[:, :-1].copy()),
                              torch.from_numpy(seqs[:, -1].copy())))
    info = {"n_train_targets": int(targets.size), "n_noisy_train_targets": int(noisy.sum())}
    return Task("synthetic", cfg.n_items, train, held_out[0], held_out[1], info)
