"""The MovieLens task: real ratings as implicit next-item feedback, split leave-one-out.

    task = make_movielens(load_config(overrides={"task": "movielens", "dataset": "ml-100k"}))

Preprocessing (the defaults match RecBole's for sequential models on ml-100k: every rating
counts, no rating threshold, no k-core filter):

1. Read the ratings (`lossbench.data` finds or downloads them): ml-100k `u.data`, tab-separated
   `user item rating timestamp`; ml-1m `ratings.dat`, `UserID::MovieID::Rating::Timestamp`.
   Every rating, whatever its value, is one interaction.
2. Filters: keep ratings >= `min_rating` (0 keeps all); then, with `k_core` > 0, drop users
   and items with fewer than `k_core` interactions, repeatedly, until none is left to drop.
3. Each user's items in timestamp order; equal timestamps keep their order in the file (a
   stable sort). Item ids are remapped densely to 1..n_items in increasing raw id; 0 pads.
4. Leave-one-out, for a user with items s_0 .. s_{n-1} and n >= 3: the test target is s_{n-1}
   with history s_0 .. s_{n-2} (it includes the validation item); the validation target is
   s_{n-2} with history s_0 .. s_{n-3}; the training sequence is s_0 .. s_{n-3}. Users with
   n < 3 have no validation or test example: all their items are training items (n = 2 gives
   one training target, n = 1 none). Without filters no such user exists in ml-100k or ml-1m
   (each user has >= 20 ratings).
5. Every history is the last `max_len` items before the target, left-padded with 0.
6. Training windows (instead of one example per prefix, as RecBole does): a training sequence
   s of length L is cut, from its end backwards, into windows of max_len + 1 items with stride
   max_len (consecutive windows share one item); inputs = window[:-1], targets = window[1:].
   So every training item except the user's first is a target exactly once per epoch, the
   last position of every window has a target, and the earliest window is left-padded (its
   padded positions have target 0). A target at position j of a window sees the j + 1 items
   of the window before it, not the user's whole past: the history is cut at the window's
   start (as in SASRec's own training), and at most max_len items long.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch

from lossbench.config import RunConfig
from lossbench.data import DatasetSpec, dataset_spec, ratings_file
from lossbench.errors import DataError
from lossbench.tasks import Split, Task

INTEGER = re.compile(r" *-?\d+ *")


def read_ratings(path: Path, spec: DatasetSpec) -> np.ndarray:
    """[N, 4] int64 rows (user, item, rating, timestamp) of the ratings file `path`, in file
    order. DataError naming the file (and the first bad line) if it cannot be read, is empty,
    or a line is not four integers separated by `spec.separator`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read ratings file {path}: {exc.strerror}") from None
    if not data.strip():
        raise DataError(f"ratings file {path} is empty")
    other = b"\t" if spec.separator == "::" else b"::"
    if other in data:
        raise_bad_line(path, data, spec)
    try:
        rows = np.loadtxt(io.BytesIO(data.replace(b"::", b"\t")), dtype=np.int64,
                          delimiter="\t", comments=None, ndmin=2)
    except ValueError:
        raise_bad_line(path, data, spec)
    if rows.shape[1] != 4:
        raise_bad_line(path, data, spec)
    return rows


def raise_bad_line(path: Path, data: bytes, spec: DatasetSpec) -> None:
    """Raise DataError naming the first line of `data` that is not four integers."""
    for number, line in enumerate(data.decode("latin-1").split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split(spec.separator)
        if len(fields) != 4 or not all(INTEGER.fullmatch(f) for f in fields):
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise DataError(f"ratings file {path}, line {number}: expected '{spec.fields}' "
                            f"(4 integers separated by {spec.separator!r}), got {shown!r}")
    raise DataError(f"ratings file {path} is not in the {spec.name} format '{spec.fields}'")


def filter_ratings(rows: np.ndarray, min_rating: int = 0, k_core: int = 0) -> np.ndarray:
    """Rows with rating >= min_rating, then the k-core: repeatedly drop rows whose user or
    item has fewer than k_core rows, until every user and item has >= k_core (0 = off)."""
    rows = rows[rows[:, 2] >= min_rating]
    while k_core > 0 and len(rows):
        _, users, user_counts = np.unique(rows[:, 0], return_inverse=True, return_counts=True)
        _, items, item_counts = np.unique(rows[:, 1], return_inverse=True, return_counts=True)
        keep = (user_counts[users] >= k_core) & (item_counts[items] >= k_core)
        if keep.all():
            break
        rows = rows[keep]
    return rows


def user_sequences(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Items of all users, user after user, each user's in timestamp order (ties in file
    order), remapped to 1..n_items. Returns (items [N], starts [U], lengths [U], n_items):
    user u's items are items[starts[u] : starts[u] + lengths[u]]."""
    _, users = np.unique(rows[:, 0], return_inverse=True)
    raw_items, items = np.unique(rows[:, 1], return_inverse=True)
    order = np.argsort(rows[:, 3], kind="stable")
    order = order[np.argsort(users[order], kind="stable")]
    lengths = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return items[order].astype(np.int64) + 1, starts, lengths, len(raw_items)


def histories(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int
              ) -> np.ndarray:
    """[M, max_len]: row m holds items[max(starts[m], ends[m] - max_len) : ends[m]],
    left-padded with 0."""
    index = ends[:, None] - max_len + np.arange(max_len)[None, :]
    valid = index >= starts[:, None]
    return np.where(valid, items[np.maximum(index, 0)], 0)


def train_windows(items: np.ndarray, starts: np.ndarray, train_lengths: np.ndarray,
                  max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training windows of the sequences items[starts[u] : starts[u] + train_lengths[u]]
    (module docstring, step 6). Returns inputs [W, max_len], targets [W, max_len] (0 = no
    target) and the user of each window [W]."""
    n_windows = -(-np.maximum(train_lengths - 1, 0) // max_len)
    users = np.repeat(np.arange(len(starts)), n_windows)
    first = np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    back = np.arange(len(users)) - first  # 0 = the window at the end of the sequence
    ends = starts[users] + train_lengths[users] - back * max_len  # one past the last target
    inputs = histories(items, starts[users], ends - 1, max_len)
    targets = np.where(inputs > 0, histories(items, starts[users], ends, max_len), 0)
    return inputs, targets, users


def make_movielens(cfg: RunConfig) -> Task:
    """The MovieLens task of `cfg.dataset` from `cfg.data_dir` (downloaded if missing), with
    `cfg.min_rating`, `cfg.k_core` and histories of `cfg.max_len` (module docstring)."""
    spec = dataset_spec(cfg.dataset)
    path = ratings_file(cfg.dataset, cfg.data_dir)
    rows = filter_ratings(read_ratings(path, spec), cfg.min_rating, cfg.k_core)
    if not len(rows):
        raise DataError(f"no ratings of {path} are left after min_rating = {cfg.min_rating} "
                        f"and k_core = {cfg.k_core}")
    items, starts, lengths, n_items = user_sequences(rows)
    held_out = lengths >= 3
    if not held_out.any():
        raise DataError(f"no user of {path} has 3 or more ratings after min_rating = "
                        f"{cfg.min_rating} and k_core = {cfg.k_core}: nothing to validate on")
    train_lengths = np.where(held_out, lengths - 2, lengths)
    inputs, targets, _ = train_windows(items, starts, train_lengths, cfg.max_len)
    ends = (starts + lengths)[held_out]
    val = Split(torch.from_numpy(histories(items, starts[held_out], ends - 2, cfg.max_len)),
                torch.from_numpy(items[ends - 2]))
    test = Split(torch.from_numpy(histories(items, starts[held_out], ends - 1, cfg.max_len)),
                 torch.from_numpy(items[ends - 1]))
    info = {"dataset": cfg.dataset, "ratings_file": str(path), "n_users": len(lengths),
            "n_items": n_items, "n_interactions": len(rows),
            "n_train_targets": int((targets > 0).sum()), "n_train_windows": len(inputs),
            "n_val": len(val), "n_test": len(test),
            "n_train_only_users": int((~held_out).sum()), "min_rating": cfg.min_rating,
            "k_core": cfg.k_core, "max_len": cfg.max_len}
    train = Split(torch.from_numpy(inputs), torch.from_numpy(targets))
    return Task(cfg.dataset, n_items, train, val, test, info)
