"""The MovieLens task: parsing, filters, ordering, leave-one-out, windows, bad files.

Hand examples on generated files in both formats; the real ml-100k files when
../shared/data/ml-100k beside the checkout is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_hand_example_split

from lossbench.config import load_config
from lossbench.errors import ConfigError, DataError
from lossbench.tasks import build_task
from lossbench.tasks.download import dataset_spec, file_sha256
from lossbench.tasks.interactions import train_windows
from lossbench.tasks.movielens import (
    filter_ratings,
    make_movielens,
    read_ratings,
    user_sequences,
)
from lossbench.training.trainer import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FORMATS = {"ml-100k": ("u.data", "\t"), "ml-1m": ("ratings.dat", "::")}


def write_ratings(data_dir: Path, dataset: str, rows) -> Path:
    """Write (user, item, rating, timestamp) rows as `dataset`'s ratings file."""
    name, sep = FORMATS[dataset]
    (data_dir / dataset).mkdir(parents=True, exist_ok=True)
    path = data_dir / dataset / name
    path.write_text("".join(sep.join(str(v) for v in row) + "\n" for row in rows))
    return path


def movielens(data_dir: Path, **settings):
    settings = {"task": "movielens", "data_dir": str(data_dir), **settings}
    return make_movielens(load_config(overrides=settings).task)


# user 7: items 30, 20, 10, 40, 50 by time; user 3: items 20, 30, 40 (ties in file order)
ROWS = [(7, 40, 5, 400), (3, 20, 1, 5), (7, 20, 4, 200), (7, 30, 3, 100), (3, 30, 2, 5),
        (7, 10, 2, 300), (3, 40, 5, 6), (7, 50, 1, 500)]


@pytest.mark.parametrize("dataset", ["ml-100k", "ml-1m"])
def test_hand_example_in_both_formats(tmp_path, dataset):
    write_ratings(tmp_path, dataset, ROWS)
    task = movielens(tmp_path, dataset=dataset, max_len=3)
    # ids numbered in order of first appearance in the file (since issue 12; before, in
    # increasing raw id): users 7 -> first, 3 -> second; items 40 -> 1, 20 -> 2, 30 -> 3,
    # 10 -> 4, 50 -> 5. User 7 by time: 3, 2, 4, 1, 5; user 3: 2, 3, 1
    assert task.name == dataset
    assert_hand_example_split(task)
    path = tmp_path / dataset / FORMATS[dataset][0]
    assert task.info == {
        "dataset": dataset, "ratings_file": str(path), "sha256": file_sha256(path),
        "n_rows": 8, "n_dropped_min_rating": 0, "n_dropped_k_core": 0,
        "n_users": 2, "n_items": 5, "n_interactions": 8, "n_train_targets": 2,
        "n_train_windows": 1, "n_val": 2, "n_test": 2, "n_train_only_users": 0,
        "min_rating": 0, "k_core": 0, "max_len": 3, "train_stride": 0}
    for split in (task.train, task.val, task.test):
        assert split.inputs.dtype == torch.int64 and split.targets.dtype == torch.int64


def test_equal_timestamps_keep_file_order():
    rows = np.array([(1, 5, 1, 10), (1, 3, 1, 10), (1, 9, 1, 5), (1, 4, 1, 10)])
    items, starts, lengths, n_items = user_sequences(rows)
    # first appearance: raw items 5, 3, 9, 4 -> 1, 2, 3, 4; time 5 first, then 5, 3, 4 in
    # file order
    assert items.tolist() == [3, 1, 2, 4] and starts.tolist() == [0]
    assert lengths.tolist() == [4] and n_items == 4


def test_windows_from_the_end_make_every_item_but_the_first_a_target_once():
    items = np.arange(1, 9)  # one user, training sequence 1..8
    inputs, targets, users = train_windows(items, np.array([0]), np.array([8]), max_len=3)
    assert inputs.tolist() == [[5, 6, 7], [2, 3, 4], [0, 0, 1]]
    assert targets.tolist() == [[6, 7, 8], [3, 4, 5], [0, 0, 2]]
    assert users.tolist() == [0, 0, 0]
    # a sequence of max_len + 1 items is one full window; one item gives no window
    inputs, targets, _ = train_windows(items, np.array([0, 4]), np.array([4, 1]), max_len=3)
    assert inputs.tolist() == [[1, 2, 3]] and targets.tolist() == [[2, 3, 4]]


def test_overlapping_windows_train_each_target_once_with_the_most_history():
    items = np.arange(1, 9)  # one user, training sequence 1..8; windows end every 2 items
    inputs, targets, users = train_windows(items, np.array([0]), np.array([8]), max_len=3,
                                           stride=2)
    assert inputs.tolist() == [[5, 6, 7], [3, 4, 5], [1, 2, 3]]
    # a later window keeps its last 2 targets; the earliest keeps all of its own
    assert targets.tolist() == [[0, 7, 8], [0, 5, 6], [2, 3, 4]]
    assert users.tolist() == [0, 0, 0]
    # stride = max_len is the non-overlapping default; a short user still gets one window
    assert np.array_equal(train_windows(items, np.array([0]), np.array([8]), 3, 3)[1],
                          train_windows(items, np.array([0]), np.array([8]), 3)[1])
    inputs, targets, _ = train_windows(items, np.array([0]), np.array([3]), 3, 1)
    assert inputs.tolist() == [[0, 1, 2]] and targets.tolist() == [[0, 2, 3]]
    # a stride above max_len would skip targets: refused with the setting's name
    with pytest.raises(ConfigError, match="train_stride"):
        load_config(overrides={"max_len": 50, "train_stride": 51})


def test_min_rating_then_k_core_on_a_hand_example():
    rows = np.array([(1, 1, 5, 0), (1, 2, 4, 0), (1, 3, 1, 0),
                     (2, 1, 5, 0), (2, 2, 5, 0), (2, 3, 5, 0),
                     (3, 1, 5, 0), (3, 4, 5, 0)])
    assert len(filter_ratings(rows)) == 8
    assert filter_ratings(rows, min_rating=4)[:, :2].tolist() == [
        [1, 1], [1, 2], [2, 1], [2, 2], [2, 3], [3, 1], [3, 4]]
    # 2-core: item 4 (once) goes, then user 3 has one rating and goes; items 1..3 stay
    assert filter_ratings(rows, k_core=2)[:, :2].tolist() == [
        [1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]
    # 2-core after min_rating 4: item 3 is left with one rating -> only users 1, 2 x items 1, 2
    assert filter_ratings(rows, min_rating=4, k_core=2)[:, :2].tolist() == [
        [1, 1], [1, 2], [2, 1], [2, 2]]
    assert len(filter_ratings(rows, k_core=4)) == 0


def test_filters_reach_the_task(tmp_path):
    write_ratings(tmp_path, "ml-1m", ROWS)
    task = movielens(tmp_path, dataset="ml-1m", min_rating=2, max_len=3)
    assert task.info["n_interactions"] == 6 and task.info["min_rating"] == 2
    with pytest.raises(DataError, match="left after --min-rating 0 and --k-core 6"):
        movielens(tmp_path, dataset="ml-1m", k_core=6)


def test_users_with_fewer_than_three_ratings_train_only(tmp_path):
    write_ratings(tmp_path, "ml-100k", ROWS + [(9, 10, 1, 1), (9, 50, 1, 2), (8, 30, 1, 1)])
    task = movielens(tmp_path, max_len=3)
    assert task.info["n_users"] == 4 and task.info["n_train_only_users"] == 2
    assert len(task.val) == len(task.test) == 2
    # items by first appearance (40, 20, 30, 10, 50 -> 1..5): user 9's 10, 50 -> 4, 5
    assert sorted(map(tuple, task.train.targets.tolist())) == [(0, 0, 5), (0, 2, 4)]
    write_ratings(tmp_path, "ml-100k", [(1, 1, 1, 1), (1, 2, 1, 2), (2, 1, 1, 1)])
    with pytest.raises(DataError, match="no user .* has 3 or more ratings"):
        movielens(tmp_path, max_len=3)


def test_env_data_dir_reaches_the_task(tmp_path, monkeypatch):
    write_ratings(tmp_path, "ml-100k", ROWS)
    monkeypatch.setenv("LOSSBENCH_DATA_DIR", str(tmp_path))
    assert movielens("", max_len=3).info["n_interactions"] == 8


@pytest.mark.parametrize("dataset, text, message", [
    ("ml-1m", "1\t2\t3\t4\n", r"ratings.dat, line 1: expected 'UserID::MovieID::Rat"),
    ("ml-100k", "1::2::3::4\n", r"u.data, line 1: expected 'user item rating timestamp'"),
    ("ml-100k", "1\t2\t3\t4\n5\t6\t7\n", r"u.data, line 2: .* got '5\\t6\\t7'"),
    ("ml-100k", "1\t2\t3\t4\n\n1\tx\t3\t4\n", r"u.data, line 3: "),
    ("ml-1m", "1::2::3::4\n1::2::3.5::4\n", r"ratings.dat, line 2: "),
    ("ml-1m", "1::2::3::4\n1::2::3::4\t\n", r"ratings.dat, line 2: "),
    ("ml-100k", "\n  \n", r"ratings file .*u.data is empty"),
], ids=["1m-tabs", "100k-colons", "truncated", "not-int", "float", "stray-tab", "empty"])
def test_bad_files_name_the_file_and_line(tmp_path, dataset, text, message):
    name, _ = FORMATS[dataset]
    (tmp_path / dataset).mkdir()
    (tmp_path / dataset / name).write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        movielens(tmp_path, dataset=dataset)
    assert "\n" not in str(caught.value)


def test_unknown_dataset_is_a_data_error():
    with pytest.raises(DataError, match="unknown dataset 'ml-10m'"):
        dataset_spec("ml-10m")


def test_movielens_task_trains_one_epoch(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(u, int(i), 3, t) for u in range(1, 21)
            for t, i in enumerate(rng.choice(30, size=rng.integers(3, 15), replace=False))]
    write_ratings(tmp_path, "ml-100k", rows)
    cfg = load_config(overrides={"task": "movielens", "data_dir": str(tmp_path), "max_len": 5,
                                 "hidden": 8, "inner": 16, "batch_size": 8, "epochs": 1,
                                 "optimizer": "adam", "lr": 0.01, "best_by": "val_ndcg10",
                                 "device": "cpu"})
    result = train(cfg, build_task(cfg.task, cfg.seed))
    assert result.summary["status"] == "complete"
    assert 0.0 <= result.summary["test_hr10"] <= 1.0


@pytest.fixture(scope="module")
def real_rows():
    path = SHARED / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.skip(f"real ml-100k absent: {path} (../shared/data beside the checkout)")
    return read_ratings(path, dataset_spec("ml-100k"))


def test_real_ml100k_counts_and_shapes(real_rows):
    task = movielens(SHARED, dataset="ml-100k")
    info = task.info
    assert (info["n_users"], info["n_items"], info["n_interactions"]) == (943, 1682, 100_000)
    assert info["n_train_targets"] == 100_000 - 3 * 943  # all but first, val, test of a user
    assert task.val.inputs.shape == task.test.inputs.shape == (943, 50)
    assert task.val.targets.shape == task.test.targets.shape == (943,)
    assert task.train.inputs.shape == task.train.targets.shape == (info["n_train_windows"], 50)
    assert bool((task.train.targets[:, -1] > 0).all())
    assert int(task.train.targets.max()) == 1682 and int(task.val.inputs.min()) == 0
    # the test history ends with the validation target
    assert torch.equal(task.test.inputs[:, -1], task.val.targets)
    assert torch.equal(task.test.inputs[:, :-1], task.val.inputs[:, 1:])


def test_real_ml100k_overlapping_windows_keep_the_targets_and_lengthen_history(real_rows):
    wide, narrow = movielens(SHARED, dataset="ml-100k"), movielens(SHARED, dataset="ml-100k",
                                                                  train_stride=25)
    assert narrow.info["train_stride"] == 25
    assert narrow.info["n_train_targets"] == wide.info["n_train_targets"]
    assert narrow.info["n_train_windows"] > 1.4 * wide.info["n_train_windows"]

    def mean_history(targets):  # a target at position j sees j + 1 items
        return float(torch.arange(1, 51).expand_as(targets)[targets > 0].float().mean())

    assert mean_history(narrow.train.targets) > mean_history(wide.train.targets) + 5


@pytest.mark.parametrize("stride", [50, 20])
def test_real_ml100k_held_out_targets_are_never_training_targets(real_rows, stride):
    items, starts, lengths, _ = user_sequences(real_rows)
    assert lengths.min() >= 20
    _, targets, users = train_windows(items, starts, lengths - 2, max_len=50, stride=stride)
    for user in range(len(starts)):
        end = starts[user] + lengths[user]
        user_targets = targets[users == user]
        user_targets = np.sort(user_targets[user_targets > 0])
        assert user_targets.tolist() == sorted(items[starts[user] + 1:end - 2].tolist())
        assert items[end - 2] not in user_targets and items[end - 1] not in user_targets
