"""How many ml-100k evaluation examples change if timestamps are ordered as RecBole 1.2.1 does?

lossbench (`lossbench.tasks.movielens.user_sequences`) orders each user's items by the exact
integer timestamps, ties in file order (a stable sort). RecBole min-max rescales the timestamp
field to [0, 1] and holds it as float32, (t - min) / (max - min), before it sorts the
interactions by user, then timestamp: timestamps a few seconds apart become equal, and their
items fall back to file order. This script builds both orders (the RecBole one with a stable
sort on the float32 value) and counts, over the users with >= 3 ratings (leave-one-out):

- users whose validation example differs (target s_{n-2} or history s_0 .. s_{n-3}),
- users whose test target (s_{n-1}) differs,
- users whose validation target differs,

and, for context, the test examples (target or history s_0 .. s_{n-2}) that differ, the
examples that differ within the last `--max-len` items of the history, and how many pairs of
distinct integer timestamps float32 merges.

    python benchmarks/recbole_timestamps.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lossbench.tasks.download import dataset_spec
from lossbench.tasks.movielens import from_ratings, read_ratings, user_sequences


def recbole_time(timestamps: np.ndarray) -> np.ndarray:
    """RecBole's rescaled timestamp: (t - min) / (max - min) in float64, held as float32."""
    t = timestamps.astype(np.float64)
    return ((t - t.min()) / (t.max() - t.min())).astype(np.float32)


def recbole_sequences(rows: np.ndarray) -> np.ndarray:
    """All users' items, user after user (same user order and item ids as `user_sequences`),
    each user's sorted by the float32 rescaled timestamp, ties in file order."""
    ids = from_ratings(rows)  # lossbench's numbering: first appearance in the file
    order = np.argsort(recbole_time(rows[:, 3]), kind="stable")
    order = order[np.argsort(ids.user[order], kind="stable")]
    return ids.item[order].astype(np.int64) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data",
                        help="folder holding ml-100k/u.data (default: ../shared/data)")
    parser.add_argument("--max-len", type=int, default=50,
                        help="history length the models see (default: 50)")
    args = parser.parse_args()

    spec = dataset_spec("ml-100k")
    rows = read_ratings(Path(args.data_dir) / "ml-100k" / "u.data", spec)
    ours, starts, lengths, _ = user_sequences(rows)
    theirs = recbole_sequences(rows)

    counts = dict.fromkeys(("val_example", "test_target", "val_target", "test_example",
                            "val_example_window", "test_example_window", "any_order"), 0)
    n_eval = 0
    for start, length in zip(starts, lengths, strict=True):
        a, b = ours[start:start + length], theirs[start:start + length]
        counts["any_order"] += not np.array_equal(a, b)
        if length < 3:
            continue
        n_eval += 1
        val_end, test_end = length - 2, length - 1  # history ends (exclusive)
        counts["val_target"] += a[val_end] != b[val_end]
        counts["test_target"] += a[test_end] != b[test_end]
        counts["val_example"] += not np.array_equal(a[:val_end + 1], b[:val_end + 1])
        counts["test_example"] += not np.array_equal(a, b)
        lo = max(0, val_end - args.max_len)
        counts["val_example_window"] += not np.array_equal(a[lo:val_end + 1], b[lo:val_end + 1])
        lo = max(0, test_end - args.max_len)
        counts["test_example_window"] += not np.array_equal(a[lo:], b[lo:])

    _, users = np.unique(rows[:, 0], return_inverse=True)
    distinct = np.unique(rows[:, 3])
    merged = int((np.diff(recbole_time(distinct)) == 0).sum())
    per_user = np.unique(np.stack([users, rows[:, 3]], 1), axis=0)
    same_user = per_user[1:, 0] == per_user[:-1, 0]
    merged_user = int((same_user & (recbole_time(per_user[1:, 1])
                                    == recbole_time(per_user[:-1, 1]))).sum())

    print(f"ml-100k: {len(rows)} ratings, {len(lengths)} users, {n_eval} with >= 3 ratings "
          f"(validation and test examples)")
    print(f"timestamps {distinct.min()} .. {distinct.max()}: {len(distinct)} distinct; "
          f"float32 rescaling merges {merged} adjacent pairs of them "
          f"({merged_user} adjacent pairs within a user)")
    print(f"users whose item order differs at all:                  {counts['any_order']}")
    print(f"users whose validation example (target or history) differs: {counts['val_example']}"
          f" of {n_eval}")
    print(f"users whose test target differs:                        {counts['test_target']}")
    print(f"users whose validation target differs:                  {counts['val_target']}")
    print(f"users whose test example (target or history) differs:   {counts['test_example']}")
    print(f"... within the last {args.max_len} history items: validation "
          f"{counts['val_example_window']}, test {counts['test_example_window']}")


if __name__ == "__main__":
    main()
