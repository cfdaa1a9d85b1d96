"""Every random seed of a run is derived here, and only here.

Each seed drives its own `torch.Generator` / `numpy.random.Generator`, passed in explicitly;
nothing depends on the global RNG state except dropout, which is seeded from `init`.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class RunSeeds:
    """The three seeds of one run (all written to config.json)."""

    data: int
    init: int
    batch: int


def run_seeds(seed: int) -> RunSeeds:
    """Seeds for the run with seed `seed`. Formulas (the only place they are defined):

        data  = seed             # synthetic data generation, label noise
        init  = seed + 10_000    # model weights, dropout
        batch = seed + 20_000    # batch order and contrastive augmentations

    All strategies of a paired comparison with the same `seed` share these three seeds, so a
    pair differs only in the strategy. The flood level b and the strategy never enter a seed.
    `lossbench run --seeds 3 --seed 0` runs seeds 0, 1, 2.
    """
    return RunSeeds(data=seed, init=seed + 10_000, batch=seed + 20_000)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global RNGs (used for dropout only)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_generator(batch_seed: int, epoch: int) -> torch.Generator:
    """The generator for one epoch's batch order and augmentations: a pure function of
    (batch_seed, epoch), so every strategy, and a resumed run, sees the same batches."""
    return torch.Generator().manual_seed(batch_seed * 100_003 + epoch)


def strategy_generator(batch_seed: int, epoch: int, tag: str) -> torch.Generator:
    """A strategy's own generator for one epoch (RLW's random loss weights): a pure function
    of (batch_seed, epoch, tag), as the epoch's generator is of (batch_seed, epoch), but
    apart from it, so that a strategy drawing from it changes no batch order and no
    augmentation. Paired runs of a seed, and a resumed run, draw the same numbers. `tag`
    (the strategy's name) keeps two strategies' streams apart:

        seed = ((batch_seed * 100_003 + epoch) * 1_000_003 + crc32(tag)) mod 2^63"""
    seed = (batch_seed * 100_003 + epoch) * 1_000_003 + zlib.crc32(tag.encode())
    return torch.Generator().manual_seed(seed % 2**63)


def fold_generator(data_seed: int, tag: str) -> torch.Generator:
    """The generator that deals a run's training rows into folds (AdaFlood's auxiliary
    models: lossbench/training/adaflood.py): a pure function of the data seed and `tag`, like
    the data it splits, so every strategy of a seed, and a resumed run, gets the same folds:

        seed = (data_seed * 1_000_003 + crc32(tag)) mod 2^63"""
    return torch.Generator().manual_seed((data_seed * 1_000_003 + zlib.crc32(tag.encode()))
                                         % 2**63)
