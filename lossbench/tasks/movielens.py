"""The MovieLens task: real ratings as implicit next-item feedback, split leave-one-out.

    task = make_movielens(load_config(overrides={"task": "movielens", "dataset": "ml-100k"}))

MovieLens is a reader in front of the pipeline that every interactions file goes through
(`lossbench.tasks.interactions`); this docstring defines the split they share. The defaults
match RecBole's for sequential models on ml-100k: every rating counts, no rating threshold,
no k-core filter.

1. Read the ratings (`lossbench.data` finds or downloads them): ml-100k `u.data`, tab-separated
   `user item rating timestamp`; ml-1m `ratings.dat`, `UserID::MovieID::Rating::Timestamp`.
   Every rating, whatever its value, is one interaction.
2. Filters: keep ratings >= `min_rating` (0 keeps all); then, with `k_core` > 0, drop users
   and items with fewer than `k_core` interactions, repeatedly, until none is left to drop.
3. Users and items are numbered densely in order of their first appearance in the file
   (items 1..n_items, 0 pads; ids the filters remove leave no gap). Each user's items in
   timestamp order; equal timestamps keep their order in the file (a stable sort).
   Deliberately first appearance, not increasing raw id (as before): a file whose ids are
   strings then gives exactly the same task as MovieLens (tested on ml-100k). The order of
   users is the order of the validation and test rows.
4. Leave-one-out, for a user with items s_0 .. s_{n-1} and n >= 3: the test target is s_{n-1}
   with history s_0 .. s_{n-2} (it includes the validation item); the validation target is
   s_{n-2} with history s_0 .. s_{n-3}; the training sequence is s_0 .. s_{n-3}. Users with
   n < 3 have no validation or test example: all their items are training items (n = 2 gives
   one training target, n = 1 none); `Task.info["n_train_only_users"]` counts them. Without
   filters no such user exists in ml-100k or ml-1m (each user has >= 20 ratings). No user with
   n >= 3 at all is a DataError.
5. Every history is the last `max_len` items before the target, left-padded with 0.
6. Training windows (instead of one example per prefix, as RecBole does): a training sequence
   s of length L is cut, from its end backwards, into windows of max_len + 1 items that end
   every `train_stride` items (S; 0 means max_len), until a window reaches s_0; inputs =
   window[:-1], targets = window[1:]. Every training item except the user's first is a
   target exactly once per epoch, in the window where it sees the most history: a window
   keeps the targets of its last S positions, the user's earliest window all of its own
   (it is left-padded; padded positions have target 0). With S = max_len consecutive
   windows share one item and no target is dropped; with S < max_len they overlap by
   max_len - S items, a window's first max_len - S positions are context only, and there
   are about max_len / S times as many windows. A target at position j of a window sees the
   j + 1 items of the window before it, not the user's whole past: the history is cut at the
   window's start (as in SASRec's own training), and at most max_len items long; with S <
   max_len every target past the user's first max_len items sees at least max_len - S.

Unlike an interactions file, the split is not cached: it is quick to build, and the data
folder may be shared and read-only.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from lossbench.config import TaskConfig
from lossbench.errors import DataError
from lossbench.tasks import interactions
from lossbench.tasks.base import Task
from lossbench.tasks.download import DatasetSpec, dataset_spec, ratings_file
from lossbench.tasks.interactions import (
    build_split,
    file_digest,
    filter_interactions,
    split_settings,
    task_from_arrays,
)
from lossbench.tasks.reader import Interactions, codes

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


def from_ratings(rows: np.ndarray) -> Interactions:
    """Rows [N, 4] (user, item, rating, timestamp), as `read_ratings` returns them, as the
    pipeline's Interactions (ids numbered in order of first appearance)."""
    user, n_users = codes(pa.chunked_array([rows[:, 0]]))
    item, n_items = codes(pa.chunked_array([rows[:, 1]]))
    return Interactions(user, item, rows[:, 3].copy(), rows[:, 2].astype(np.float64),
                        n_users, n_items)


def filter_ratings(rows: np.ndarray, min_rating: float = 0, k_core: int = 0) -> np.ndarray:
    """Step 2 on rows [N, 4]: the rows kept, in file order (`filter_interactions`)."""
    return rows[filter_interactions(from_ratings(rows), min_rating, k_core)[0]]


def user_sequences(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Step 3 on rows [N, 4]: (items [N], starts [U], lengths [U], n_items); user u's items
    are items[starts[u] : starts[u] + lengths[u]] (`interactions.user_sequences`)."""
    seqs = interactions.user_sequences(from_ratings(rows))
    return seqs.items, seqs.starts, seqs.lengths, seqs.n_items


def make_movielens(cfg: TaskConfig) -> Task:
    """The MovieLens task of `cfg.file.dataset` from `cfg.file.data_dir` (downloaded if
    missing), with `cfg.file.min_rating`, `cfg.file.k_core` and histories of `cfg.max_len`
    (module docstring)."""
    spec = dataset_spec(cfg.file.dataset)
    path = ratings_file(cfg.file.dataset, cfg.file.data_dir)
    sha256 = file_digest(path)
    settings = split_settings(cfg)
    arrays, counts = build_split(lambda: from_ratings(read_ratings(path, spec)),
                                 source=str(path), noun="ratings", **settings)
    info = {"dataset": cfg.file.dataset, "ratings_file": str(path), "sha256": sha256, **counts,
            **settings}
    return task_from_arrays(cfg.file.dataset, arrays, info)
