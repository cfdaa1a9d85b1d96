"""Bring your own data: any interactions file becomes a task, split as MovieLens is.

    task = make_interactions(load_config(overrides={"task": "interactions", "data": "clicks.csv"}))
    facts = describe_file("clicks.csv")          # what `lossbench data info FILE` shows

Reading the file (formats, columns, ids, timestamps, bad input, the parser and why) is
`lossbench.tasks.reader`.

The pipeline after reading (MovieLens's reader feeds the same one; the leave-one-out split and
the training windows are described in `lossbench.tasks.movielens`):

1. `filter_interactions`: keep rating >= min_rating (0 keeps all), then the iterative k-core.
2. `user_sequences`: users and items are numbered densely in order of their first appearance
   in the file (items 1..n_items, 0 pads; ids the filters remove leave no gap); each user's
   items in timestamp order, ties in file order: one stable argsort of the int64 key
   user * span + (time - min time), or user * n_distinct + dense rank of time when that
   would not fit (float timestamps).
3. `leave_one_out`: validation and test targets, histories and training windows as numpy
   arrays (`histories`, `train_windows`), built in chunks of rows to bound memory. The
   validation and test histories are two views of one [n_val, max_len + 1] array.

Cache: the arrays of step 3 go to `<data dir>/cache/<name>-<key>.npys` (consecutive .npy
records; data dir from `lossbench.data.resolve_data_dir`), key = SHA-256 of the file's SHA-256,
the columns and format read, the split's settings (`split_settings`) and CACHE_VERSION.
Written to a temporary file, then renamed; a folder that cannot be written leaves the task
uncached, and a cache file that does not load or does not fit is rebuilt. The file's SHA-256
is computed once per process while its size and mtime stay the same. Label noise comes after
the cache (`build_task`).
"""


from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from lossbench.config import TaskConfig
from lossbench.errors import DataError
from lossbench.tasks.base import Split, Task
from lossbench.tasks.download import resolve_data_dir
from lossbench.tasks.reader import Interactions, open_layout, read_interactions

EPOCH_SECONDS = (1e8, 4e9)
"""Timestamps in this range are shown as dates by `describe_file` (1973-03-03 .. 2096-10-02)."""
CACHE_VERSION = 1
"""Part of every cache key: bump it when a change to the pipeline changes its output."""
CHUNK_ROWS = 1 << 14
ARRAYS = ("train_inputs", "train_targets", "held_out", "val_targets", "test_targets")


@dataclass(frozen=True)
class Sequences:
    """All users' items (1..n_items), user after user, each user's in time order: user u's
    items are items[starts[u] : starts[u] + lengths[u]]."""

    items: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    n_items: int


def filter_interactions(rows: Interactions, min_rating: float = 0.0, k_core: int = 0
                        ) -> tuple[np.ndarray, dict[str, int]]:
    """Indices of the rows kept (in file order): rating >= min_rating (0 keeps all), then the
    k-core: repeatedly drop rows whose user or item has fewer than k_core rows, until every
    user and item has >= k_core (0 = off). Also the rows each filter removed."""
    index = np.arange(len(rows))
    if min_rating > 0:
        index = np.flatnonzero(rows.rating >= min_rating)
    after_rating = len(index)
    while k_core > 0 and len(index):
        user, item = rows.user[index], rows.item[index]
        keep = ((np.bincount(user, minlength=rows.n_users)[user] >= k_core)
                & (np.bincount(item, minlength=rows.n_items)[item] >= k_core))
        if keep.all():
            break
        index = index[keep]
    return index, {"min_rating": len(rows) - after_rating, "k_core": after_rating - len(index)}


def dense(codes: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Codes renumbered 0..m-1 without gaps, keeping their order; m = codes still present."""
    present = np.bincount(codes, minlength=n) > 0
    if present.all():
        return codes, n
    return (np.cumsum(present) - 1)[codes], int(present.sum())


def sort_key(user: np.ndarray, time: np.ndarray, n_users: int) -> np.ndarray:
    """An int64 key that orders rows by user, then time; equal keys = equal user and time."""
    if not len(time):
        return np.zeros(0, dtype=np.int64)
    if time.dtype.kind in "iu":
        low = int(time.min())
        span = int(time.max()) - low + 1
        if span * n_users < 2**63:
            return user.astype(np.int64) * span + (time - low)
    rank = np.unique(time, return_inverse=True)[1].reshape(-1)
    return user.astype(np.int64) * (int(rank.max()) + 1) + rank


def user_sequences(rows: Interactions) -> Sequences:
    """Users and items numbered densely in order of first appearance (items from 1), each
    user's items in time order, ties in file order."""
    user, n_users = dense(rows.user, rows.n_users)
    item, n_items = dense(rows.item, rows.n_items)
    order = np.argsort(sort_key(user, rows.time, n_users), kind="stable")
    lengths = np.bincount(user, minlength=n_users)
    return Sequences(item[order].astype(np.int64) + 1, np.cumsum(lengths) - lengths, lengths,
                     n_items)


def histories(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int
              ) -> np.ndarray:
    """[M, max_len]: row m holds items[max(starts[m], ends[m] - max_len) : ends[m]],
    left-padded with 0 (filled CHUNK_ROWS rows at a time)."""
    out = np.empty((len(starts), max_len), dtype=items.dtype)
    offsets = np.arange(max_len) - max_len
    for a in range(0, len(starts), CHUNK_ROWS):
        index = ends[a:a + CHUNK_ROWS, None] + offsets
        np.take(items, index, out=out[a:a + CHUNK_ROWS], mode="clip")
        out[a:a + CHUNK_ROWS][index < starts[a:a + CHUNK_ROWS, None]] = 0
    return out


def train_windows(items: np.ndarray, starts: np.ndarray, train_lengths: np.ndarray,
                  max_len: int, stride: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training windows of the sequences items[starts[u] : starts[u] + train_lengths[u]]
    (lossbench.tasks.movielens, step 6): windows of max_len + 1 items ending every `stride`
    items (0 = max_len) from the end backwards, until one reaches the user's first item.
    Every target is kept once, in the window where it has the most history: the last
    `stride` positions of each window, every position of the user's earliest window.
    Returns inputs [W, max_len], targets [W, max_len] (0 = no target) and the user of each
    window [W]."""
    stride = stride or max_len
    n_targets = np.maximum(train_lengths - 1, 0)
    n_windows = np.where(n_targets > 0, 1 + -(-np.maximum(n_targets - max_len, 0) // stride), 0)
    users = np.repeat(np.arange(len(starts)), n_windows)
    back = np.arange(len(users)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    ends = starts[users] + train_lengths[users] - back * stride  # one past the last target
    inputs = histories(items, starts[users], ends - 1, max_len)
    targets = histories(items, starts[users] + 1, ends, max_len)  # a target needs an input
    later = back < n_windows[users] - 1  # not the earliest: its first targets are elsewhere
    targets[later, :max_len - stride] = 0
    return inputs, targets, users


def to_sequences(rows: Interactions, min_rating: float, k_core: int, source: str,
                 noun: str = "interactions") -> tuple[Sequences, dict[str, int]]:
    """Steps 1-2: filters, then sequences, and the rows each filter dropped. DataError when
    no row is left, or no user has the 3 items a validation and a test example need."""
    index, dropped = filter_interactions(rows, min_rating, k_core)
    after = (f"after --min-rating {min_rating:g} and --k-core {k_core} (min_rating, k_core "
             "in a config file)")
    if not len(index):
        raise DataError(f"no {noun} of {source} are left {after}")
    seqs = user_sequences(rows.take(index))
    if not (seqs.lengths >= 3).any():
        raise DataError(f"no user of {source} has 3 or more {noun} {after}: nothing to "
                        "validate on")
    return seqs, {"n_rows": len(rows), "n_dropped_min_rating": dropped["min_rating"],
                  "n_dropped_k_core": dropped["k_core"]}


def leave_one_out(seqs: Sequences, max_len: int, train_stride: int = 0
                  ) -> tuple[dict[str, np.ndarray], dict]:
    """Step 3: the arrays of the split (ARRAYS) and their counts, training windows every
    `train_stride` items (`train_windows`). Users with fewer than 3 items have no validation
    or test example (`n_train_only_users`)."""
    held = seqs.lengths >= 3
    train_lengths = np.where(held, seqs.lengths - 2, seqs.lengths)
    inputs, targets, _ = train_windows(seqs.items, seqs.starts, train_lengths, max_len,
                                       train_stride)
    ends = (seqs.starts + seqs.lengths)[held]
    arrays = {"train_inputs": inputs, "train_targets": targets,
              "held_out": histories(seqs.items, seqs.starts[held], ends - 1, max_len + 1),
              "val_targets": seqs.items[ends - 2], "test_targets": seqs.items[ends - 1]}
    counts = {"n_users": len(seqs.lengths), "n_items": seqs.n_items,
              "n_interactions": len(seqs.items), "n_train_targets": int((targets > 0).sum()),
              "n_train_windows": len(inputs), "n_val": int(held.sum()),
              "n_test": int(held.sum()), "n_train_only_users": int((~held).sum())}
    return arrays, counts


def split_settings(cfg: TaskConfig) -> dict:
    """The settings that shape the split of an interactions or MovieLens file (the keyword
    arguments of `build_split` besides `read`, `source` and `noun`)."""
    return {"min_rating": cfg.file.min_rating, "k_core": cfg.file.k_core,
            "max_len": cfg.max_len, "train_stride": cfg.train_stride}


def build_split(read: Callable[[], Interactions], min_rating: float, k_core: int,
                max_len: int, source: str, noun: str = "interactions", train_stride: int = 0
                ) -> tuple[dict[str, np.ndarray], dict]:
    """The whole pipeline: read, filters and sequences, leave-one-out; (arrays, counts).
    `read` is a function so that no caller holds the rows: they are freed before the padded
    arrays are built (the peak of memory)."""
    seqs, counts = to_sequences(read(), min_rating, k_core, source, noun)
    arrays, split_counts = leave_one_out(seqs, max_len, train_stride)
    return arrays, {**counts, **split_counts}


def task_from_arrays(name: str, arrays: dict[str, np.ndarray], info: dict) -> Task:
    """The Task of the split `arrays`; validation and test histories are views of
    arrays["held_out"] (test's is validation's shifted by one item)."""
    held_out = torch.from_numpy(arrays["held_out"])
    train = Split(torch.from_numpy(arrays["train_inputs"]),
                  torch.from_numpy(arrays["train_targets"]))
    val = Split(held_out[:, :-1], torch.from_numpy(arrays["val_targets"]))
    test = Split(held_out[:, 1:], torch.from_numpy(arrays["test_targets"]))
    return Task(name, info["n_items"], train, val, test, info)


# --- cache ------------------------------------------------------------------------------------

DIGESTS: dict[tuple, str] = {}
"""SHA-256 of files already hashed by this process, by (path, size, mtime, inode)."""


def file_digest(path: Path) -> str:
    """Hex SHA-256 of the file, read in 1 MiB chunks; remembered while it is unchanged."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if key not in DIGESTS:
            with path.open("rb") as f:
                DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    return DIGESTS[key]


def cached_split(data_dir: str, name: str, key: dict, max_len: int,
                 build: Callable[[], tuple[dict, dict]]) -> tuple[dict, dict]:
    """(arrays, counts) from `<data dir>/cache/<name>-<hash of key>.npys`, else from
    `build()`, then saved there (module docstring: the cache)."""
    blob = json.dumps({"version": CACHE_VERSION, "max_len": max_len, **key}, sort_keys=True)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40]
    path = (resolve_data_dir(data_dir) / "cache"
            / f"{stem}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npys")
    loaded = load_split(path, max_len)
    if loaded is not None:
        return loaded
    arrays, counts = build()
    save_split(path, arrays, counts)
    return arrays, counts


def load_split(path: Path, max_len: int) -> tuple[dict, dict] | None:
    """The cached (arrays, counts) at `path`; None if absent, unreadable or inconsistent.
    The arrays are memory-mapped copy-on-write (np.memmap mode "c"): nothing is read until
    used, and processes that load the same file share its pages."""
    arrays = {}
    try:
        with path.open("rb") as f:
            counts = json.loads(str(np.load(f, allow_pickle=False)))
            for name in ARRAYS:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
                start, size = f.tell(), math.prod(shape) * dtype.itemsize
                arrays[name] = (np.memmap(path, dtype, "c", start, shape, "F" if fortran else "C")
                                if size else np.zeros(shape, dtype))
                f.seek(start + size)
    except (OSError, ValueError, EOFError):
        return None
    shapes = {name: array.shape for name, array in arrays.items()}
    fits = (all(array.dtype == np.int64 for array in arrays.values())
            and isinstance(counts, dict) and isinstance(counts.get("n_items"), int)
            and len(shapes["train_inputs"]) == 2 and shapes["train_inputs"][1] == max_len
            and shapes["train_targets"] == shapes["train_inputs"]
            and shapes["held_out"][1:] == (max_len + 1,)
            and shapes["val_targets"] == shapes["test_targets"] == shapes["held_out"][:1])
    return (arrays, counts) if fits else None


def save_split(path: Path, arrays: dict[str, np.ndarray], counts: dict) -> None:
    """Write the cache file: the counts as JSON text, then ARRAYS, as consecutive .npy
    records (no zip: loads at disk speed), to a temporary file renamed into place. If the
    folder cannot be written, the split stays uncached."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.array(json.dumps(counts)))
            for name in ARRAYS:
                np.save(f, arrays[name])
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)


# --- tasks and facts --------------------------------------------------------------------------

def make_interactions(cfg: TaskConfig) -> Task:
    """The task of the file `cfg.file.data` (module docstring), named after the file's stem."""
    layout = open_layout(cfg.file.data, cfg.file.user_col, cfg.file.item_col,
                         cfg.file.time_col, cfg.file.rating_col)
    with_rating = cfg.file.min_rating > 0
    sha256 = file_digest(layout.path)
    used = {r: n for r, n in layout.columns.items() if r != "rating" or with_rating}
    settings = split_settings(cfg)
    key = {"sha256": sha256, "format": layout.format, "delimiter": layout.delimiter,
           "columns": used, **settings}

    def build() -> tuple[dict, dict]:
        return build_split(lambda: read_interactions(layout, with_rating),
                           source=str(layout.path), **settings)

    arrays, counts = cached_split(cfg.file.data_dir, layout.path.stem, key, cfg.max_len, build)
    info = {"file": str(layout.path.resolve()), "sha256": sha256, "format": layout.format,
            "columns": used, **counts, **settings}
    return task_from_arrays(layout.path.stem, arrays, info)


def describe_file(path: str | Path, user_col: str = "", item_col: str = "", time_col: str = "",
                  rating_col: str = "", min_rating: float = 0.0, k_core: int = 0) -> dict:
    """Facts about an interactions file, as a JSON-able dict: format and columns used; rows;
    users, items, interactions and sparsity after the filters; sequence-length percentiles;
    time span (dates when the values look like epoch seconds); what the filters and the
    split drop. DataError for a file `make_interactions` cannot read."""
    layout = open_layout(path, user_col, item_col, time_col, rating_col)
    rows = read_interactions(layout, bool(layout.columns["rating"]) or min_rating > 0)
    index, dropped = filter_interactions(rows, min_rating, k_core)
    seqs, time = user_sequences(rows.take(index)), rows.time[index]
    lengths, n = seqs.lengths, len(index)
    held = lengths >= 3
    facts = {"file": str(layout.path.resolve()), "format": layout.format,
             "delimiter": layout.delimiter, "columns_found": layout.names,
             "columns": {role: name or None for role, name in layout.columns.items()},
             "rows": len(rows), "users": len(lengths), "items": seqs.n_items,
             "interactions": n,
             "sparsity": 1.0 - n / (len(lengths) * seqs.n_items) if n else None,
             "sequence_length": None, "time": None,
             "filters": {"min_rating": min_rating, "k_core": k_core},
             "dropped": {"rows_min_rating": dropped["min_rating"],
                         "rows_k_core": dropped["k_core"],
                         "users_too_short": int((~held).sum())},
             "split": {"train_targets": int(np.maximum(lengths - 1 - 2 * held, 0).sum()),
                       "val": int(held.sum()), "test": int(held.sum())}}
    if n:
        q = np.percentile(lengths, [25, 50, 75, 90, 99]).tolist()
        facts["sequence_length"] = {"min": int(lengths.min()), "p25": q[0], "p50": q[1],
                                    "p75": q[2], "p90": q[3], "p99": q[4],
                                    "max": int(lengths.max()), "mean": float(lengths.mean())}
        first, last = time.min().item(), time.max().item()
        facts["time"] = {"first": first, "last": last, "first_date": epoch_date(first),
                         "last_date": epoch_date(last)}
    return facts


def epoch_date(value: float) -> str | None:
    """ISO date-time (UTC) of `value` if it looks like epoch seconds (EPOCH_SECONDS), else None."""
    if not EPOCH_SECONDS[0] <= value <= EPOCH_SECONDS[1]:
        return None
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
