"""Interactions files as tasks: formats, columns, ids, timestamps, filters, cache, label noise,
facts, bad files, and the proof that MovieLens and a converted CSV give the same task.

Every test builds in its own tmp_path data dir, so the cache never leaves the test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import assert_hand_example_split, metrics_rows, only_run, task_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossbench.config import load_config
from lossbench.errors import DataError
from lossbench.tasks import build_task, data_fingerprint, reader, task_key, with_label_noise
from lossbench.tasks import interactions as inter
from lossbench.tasks.interactions import describe_file
from lossbench.tasks.reader import parse_time

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURES = [HealthCheck.function_scoped_fixture]

# The hand example of test_movielens.py with string ids: user u7 has items by time m30, m20,
# m10, m40, m50; user u3 has m20, m30, m40 (timestamps 5, 5, 6: the tie keeps file order).
ROWS = [("u7", "m40", 5, 400), ("u3", "m20", 1, 5), ("u7", "m20", 4, 200),
        ("u7", "m30", 3, 100), ("u3", "m30", 2, 5), ("u7", "m10", 2, 300),
        ("u3", "m40", 5, 6), ("u7", "m50", 1, 500)]
HEADER = ("user_id", "item_id", "rating", "timestamp")


def write(path: Path, rows=ROWS, header=HEADER, sep: str = ",") -> Path:
    """A text file: the header line, then one line per row."""
    lines = [sep.join(header)] + [sep.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build(path: Path, **settings):
    cfg = load_config(overrides={"task": "interactions", "data": str(path), "max_len": 3,
                                 "data_dir": str(path.parent / "data"), **settings})
    return build_task(cfg.task, cfg.seed)


def tensors(task) -> list[torch.Tensor]:
    return [task.train.inputs, task.train.targets, task.val.inputs, task.val.targets,
            task.test.inputs, task.test.targets]


def test_hand_example_numbers_ids_by_first_appearance(tmp_path):
    task = build(write(tmp_path / "clicks.csv"))
    # users u7 -> first, u3 -> second; items m40, m20, m30, m10, m50 -> 1..5 (as MovieLens)
    assert task.name == "clicks"
    assert_hand_example_split(task)
    info = task.info
    assert info["file"] == str((tmp_path / "clicks.csv").resolve())
    assert info["columns"] == {"user": "user_id", "item": "item_id", "time": "timestamp"}
    assert (info["n_users"], info["n_items"], info["n_interactions"], info["n_rows"]) == (
        2, 5, 8, 8)
    assert (info["n_train_targets"], info["n_val"], info["n_test"]) == (2, 2, 2)
    assert info["n_train_only_users"] == 0 and len(info["sha256"]) == 64
    assert all(t.dtype == torch.int64 for t in tensors(task))


@pytest.mark.parametrize("name, sep, header", [
    ("a.tsv", "\t", HEADER),
    ("b.txt", ";", HEADER),
    ("c.csv", "|", HEADER),
    ("d.inter", "\t", ("user_id:token", "item_id:token", "rating:float", "timestamp:float")),
    ("e.csv", ",", ("UserId", "MovieID", "Rating", "TS")),
    ("f.csv", ",", ('"user"', '"item"', "rating", '"time"')),
])
def test_every_text_format_gives_the_same_task(tmp_path, name, sep, header):
    reference = build(write(tmp_path / "ref.csv"))
    task = build(write(tmp_path / name, header=header, sep=sep))
    assert all(torch.equal(a, b) for a, b in zip(tensors(reference), tensors(task), strict=True))


def test_parquet_and_integer_ids(tmp_path):
    reference = build(write(tmp_path / "ref.csv"))
    table = pa.table({"userId": [int(r[0][1:]) for r in ROWS],
                      "itemId": [int(r[1][1:]) for r in ROWS], "ts": [r[3] for r in ROWS]})
    pq.write_table(table, tmp_path / "clicks.data")  # found by its magic bytes, not its name
    task = build(tmp_path / "clicks.data")
    assert task.info["format"] == "parquet"
    assert all(torch.equal(a, b) for a, b in zip(tensors(reference), tensors(task), strict=True))


def test_explicit_columns_win_over_names(tmp_path):
    rows = [(r[3], r[1], r[0], 0) for r in ROWS]  # a misleading 'user' column of zeros
    path = write(tmp_path / "x.csv", rows=rows, header=("when", "what", "who", "user"))
    task = build(path, user_col="WHO", item_col="what", time_col="when")
    assert task.info["columns"] == {"user": "who", "item": "what", "time": "when"}
    assert torch.equal(task.test.targets, build(write(tmp_path / "r.csv")).test.targets)


@pytest.mark.parametrize("times", [
    ["2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01T09:00:00"],
    ["2024-05-01T10:00", "2024-05-01T10:00", "2024-05-01T09:00"],
    ["2024-05-02", "2024-05-02", "2024-05-01"],
    ["2024-05-01 10:00:00.5", "2024-05-01 10:00:00.5", "2024-05-01 10:00:00.25"],
    ["1.5", "1.5", "0.25"],
])
def test_timestamps_order_and_ties(tmp_path, times):
    # three rows of one user: rows 1 and 2 tie (file order), row 3 is the earliest
    rows = [("a", "x", 1, times[0]), ("a", "y", 1, times[1]), ("a", "z", 1, times[2])]
    task = build(write(tmp_path / "t.csv", rows=rows))
    # items x, y, z -> 1, 2, 3; order z, x, y: validation target x, test target y
    assert task.val.targets.tolist() == [1] and task.test.targets.tolist() == [2]
    assert task.test.inputs.tolist() == [[0, 3, 1]]


def test_parse_time_rule():
    assert parse_time("874965758") == 874965758
    assert parse_time("1.25") == 1.25
    assert parse_time("1970-01-02") == 86400
    assert parse_time("1970-01-01T01:00:00+01:00") == 0
    assert parse_time("1970-01-01T00:00:00.5Z") == 0.5
    for bad in ("nan", "inf", "yesterday", "2024-13-01"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_filters_and_short_users_are_counted(tmp_path):
    path = write(tmp_path / "f.csv", rows=ROWS + [("u9", "m10", 1, 1), ("u9", "m50", 1, 2),
                                                  ("u8", "m30", 1, 1)])
    task = build(path)
    assert task.info["n_train_only_users"] == 2 and len(task.val) == 2
    task = build(path, min_rating=2)
    assert task.info["n_dropped_min_rating"] == 5 and task.info["n_interactions"] == 6
    task = build(path, k_core=2)
    assert task.info["n_dropped_k_core"] == 1 and task.info["n_users"] == 3
    with pytest.raises(DataError, match=r"no user of .* has 3 or more interactions after "
                                        r"--min-rating 0 and --k-core 0 \(min_rating, k_core "
                                        r"in a config file\): nothing to validate"):
        build(write(tmp_path / "s.csv", rows=ROWS[:2] + ROWS[3:5]))
    with pytest.raises(DataError, match="left after --min-rating 0 and --k-core 9"):
        build(path, k_core=9)


def test_min_rating_needs_a_rating_column(tmp_path):
    path = write(tmp_path / "n.csv", rows=[r[:2] + r[3:] for r in ROWS],
                 header=("user", "item", "time"))
    assert build(path).n_items == 5
    with pytest.raises(DataError, match=r"no rating column, which --min-rating \(min_rating "
                                        r"in a config file\) needs .* name it with "
                                        r"--rating-col .* columns found: user, item, time"):
        build(path, min_rating=3)


def bad(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("", r"interactions file .*bad.csv is empty"),
    (" \n\n  \n", r"is empty"),
    ("\nuser,item,ts\n", r"bad.csv, line 1: empty; expected a header"),
    ("user,item,ts\n", r"bad.csv has a header but no rows of data"),
    ("user,item,item,ts\n1,2,3,4\n", r"bad.csv, line 1: column 'item' appears twice"),
    ("person,thing,ts\n1,2,3\n", r"bad.csv: no user column \(looked for user_id, userId, "
                                 r"user; name it with --user-col \(user_col in a config "
                                 r"file\)\); columns found: person, thing, ts"),
    ("user,item,when\n1,2,3\n", r"no time column .*columns found: user, item, when"),
    ("user item ts\n1 2 3\n", r"bad.csv, line 1: no delimiter"),
    ("user,item,ts\n1,2,3\n1,2\n", r"bad.csv, line 3: 2 fields, the header has 3"),
    ("user,item,ts\n1,2,3\n\n1,2,3,4\n", r"bad.csv, line 4: 4 fields"),
    ("user,item,ts\n1,2,3\n1,3,soon\n", r"bad.csv, line 3: timestamp 'soon' in column 'ts' "
                                        r"is not a number or ISO-8601 date"),
    ("user,item,ts\n1,2,3.5\n1,3,nan\n", r"bad.csv, line 3: timestamp nan in column 'ts'"),
    ("user,item,ts\n1,2,3\n,3,4\n", r"bad.csv, line 3: empty user id in column 'user'"),
    ("user,item,ts\n1,2,3\n\n2,3,\n", r"bad.csv, line 4: empty timestamp in column 'ts'"),
    ("user,item,ts\n1,2,true\n", r"column 'ts' holds bool, not timestamps"),
    (b"user,item,ts\n1,2,3\n1,3,\xff\n", r"bad.csv: column 'ts' holds binary, not timestamps"),
    (b"\xff\xfeu\x00", r"bad.csv, line 1: not UTF-8 text"),
    ("PAR1 not really", r"cannot read Parquet file .*bad.csv"),
], ids=["empty", "blank", "blank-first-line", "header-only", "duplicate", "no-user",
        "no-time", "no-delimiter", "short-row", "long-row", "bad-time", "nan-time",
        "empty-id", "empty-time", "bool-time", "bad-utf8", "utf16", "fake-parquet"])
def test_bad_files_are_one_line_data_errors(tmp_path, text, message):
    path = bad(tmp_path / "bad.csv", text)
    for call in (lambda: build(path), lambda: describe_file(path)):
        with pytest.raises(DataError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)


def test_bad_rating_and_column_settings(tmp_path):
    path = bad(tmp_path / "r.csv", "user,item,ts,rating\n1,2,3,4\n1,3,4,five\n")
    with pytest.raises(DataError, match=r"r.csv, line 3: rating 'five' in column 'rating' "
                                        "is not a number"):
        build(path, min_rating=1)
    with pytest.raises(DataError, match=r"has no column 'who' \(given as the user column by "
                                        r"--user-col \(user_col in a config file\)\); columns "
                                        "found: user, item, ts, rating"):
        build(path, user_col="who")
    with pytest.raises(DataError, match=r"column 'user' is both the user and the item column; "
                                        r"name them apart with --user-col and --item-col "
                                        r"\(user_col, item_col in a config file\)"):
        build(path, item_col="user")


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(DataError, match=r"interactions file .*nope.csv not found"):
        build(tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match=r"dir.csv is a folder, not an interactions file"):
        build(tmp_path / "dir.csv")


def test_cache_is_used_rebuilt_when_corrupt_and_keyed_by_content(tmp_path, monkeypatch):
    path = write(tmp_path / "c.csv")
    first = build(path)
    (cached,) = (tmp_path / "data" / "cache").glob("c-*.npys")
    assert not [p for p in cached.parent.iterdir() if p.suffix == ".tmp"]
    calls = []
    real = reader.read_interactions
    monkeypatch.setattr(inter, "read_interactions", lambda *a: calls.append(1) or real(*a))
    again = build(path)
    assert calls == [] and again.info == first.info
    assert all(torch.equal(a, b) for a, b in zip(tensors(first), tensors(again), strict=True))
    cached.write_bytes(cached.read_bytes()[:300])  # truncated: rebuilt, not an error
    assert torch.equal(build(path).train.targets, first.train.targets) and calls == [1]
    write(path, rows=ROWS[:-1])  # new content, new key
    assert build(path).info["n_interactions"] == 7 and calls == [1, 1]
    assert len(list(cached.parent.glob("c-*.npys"))) == 2


def test_train_stride_is_part_of_the_cache_key(tmp_path):
    path = write(tmp_path / "long.csv", rows=[("u1", f"m{i}", 1, i) for i in range(10)])
    wide, narrow = build(path), build(path, train_stride=1)  # 7 training targets, max_len 3
    assert (wide.info["n_train_windows"], narrow.info["n_train_windows"]) == (3, 5)
    assert len(list((tmp_path / "data" / "cache").glob("long-*.npys"))) == 2
    assert torch.equal(build(path, train_stride=1).train.inputs, narrow.train.inputs)
    assert narrow.train.targets.count_nonzero() == wide.train.targets.count_nonzero() == 7


def test_unwritable_cache_still_builds(tmp_path):
    path = write(tmp_path / "c.csv")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cache").write_text("a file where the cache folder would be")
    assert build(path).n_items == 5


def test_task_key_and_fingerprint_follow_the_data(tmp_path):
    path = write(tmp_path / "k.csv")

    def key(**settings) -> tuple:
        cfg = load_config(overrides=settings)
        return task_key(cfg.task, cfg.seed)

    files = {"task": "interactions", "data": str(path)}
    cfg = load_config(overrides=files)
    other = load_config(overrides={**files, "k_core": 2})
    assert len({key(**files), key(**files, k_core=2), key(**files, label_noise=0.5)}) == 3
    assert key(**files) == key(**files, seed=3)  # the file's data does not follow the seed
    fingerprint = data_fingerprint(cfg.task)
    assert fingerprint["sha256"] == inter.file_digest(path) and fingerprint["k_core"] == 0
    assert data_fingerprint(other.task) != fingerprint
    write(path, rows=ROWS[:-1])
    assert data_fingerprint(cfg.task)["sha256"] != fingerprint["sha256"]
    assert data_fingerprint(load_config(overrides={"task": "synthetic"}).task) == {}
    ratings = tmp_path / "ml-100k" / "u.data"
    ratings.parent.mkdir()
    ratings.write_text("1\t2\t3\t4\n")
    movielens = {"task": "movielens", "data_dir": str(tmp_path)}
    assert data_fingerprint(load_config(overrides=movielens).task) == {
        "sha256": inter.file_digest(ratings)}
    assert key(**movielens) != key(**movielens, label_noise=0.1)


@pytest.mark.parametrize("task", ["synthetic", "interactions"])
def test_label_noise_replaces_that_fraction_of_training_targets_only(tmp_path, task):
    settings = ({"task": "synthetic", "n_items": 20, "n_train_users": 50, "n_val_users": 8,
                 "n_test_users": 8, "seq_len": 5, "batch_size": 10} if task == "synthetic"
                else {"task": "interactions", "data": str(write(tmp_path / "l.csv")),
                      "data_dir": str(tmp_path), "max_len": 3})
    clean = task_of(load_config(overrides=settings))
    assert task_of(load_config(overrides={**settings, "label_noise": 0.0})).info == \
        clean.info
    noisy = task_of(load_config(overrides={**settings, "label_noise": 0.5}))
    targets, noisy_targets = clean.train.targets, noisy.train.targets
    n = int((targets > 0).sum())
    assert noisy.info["n_label_noise_targets"] == round(0.5 * n)
    assert torch.equal(noisy_targets > 0, targets > 0) and int(noisy_targets.max()) <= 20
    assert int((noisy_targets != targets).sum()) <= round(0.5 * n)
    assert all(torch.equal(a, b) for a, b in zip(tensors(clean)[2:], tensors(noisy)[2:],
                                                 strict=True))
    again = task_of(load_config(overrides={**settings, "label_noise": 0.5}))
    assert torch.equal(again.train.targets, noisy_targets)


def test_label_noise_draws_from_the_data_seed():
    task = task_of(load_config(overrides={"n_train_users": 200}))
    a, b = (with_label_noise(task, 1.0, seed).train.targets for seed in (0, 1))
    assert not torch.equal(a, b) and with_label_noise(task, 0.0, 0) is task
    assert float((a != task.train.targets).float().mean()) > 0.9  # 1 / 150 stay by chance


def test_describe_file(tmp_path):
    rows = [("a", "x", 5, "2024-05-01"), ("a", "y", 1, "2024-05-03"), ("a", "z", 4, "2024-05-02"),
            ("b", "x", 5, "2024-05-04"), ("c", "x", 2, "2024-05-01")]
    facts = describe_file(write(tmp_path / "d.csv", rows=rows), min_rating=2)
    json.dumps(facts)
    assert facts["columns"] == {"user": "user_id", "item": "item_id", "time": "timestamp",
                                "rating": "rating"}
    # min_rating 2 drops (a, y): items x, z are left
    assert (facts["rows"], facts["users"], facts["items"], facts["interactions"]) == (5, 3, 2, 4)
    assert facts["sparsity"] == pytest.approx(1 - 4 / 6)
    assert facts["sequence_length"]["min"] == 1 and facts["sequence_length"]["max"] == 2
    assert facts["time"]["first_date"] == "2024-05-01T00:00:00Z"
    assert facts["time"]["last_date"] == "2024-05-04T00:00:00Z"
    assert facts["dropped"] == {"rows_min_rating": 1, "rows_k_core": 0, "users_too_short": 3}
    assert facts["split"] == {"train_targets": 1, "val": 0, "test": 0}
    small = describe_file(write(tmp_path / "e.csv", rows=[("a", "x", 1, 3), ("a", "y", 1, 4)]))
    assert small["time"] == {"first": 3, "last": 4, "first_date": None, "last_date": None}
    empty = describe_file(tmp_path / "e.csv", k_core=5)
    assert empty["interactions"] == 0 and empty["sequence_length"] is None


def test_chunked_codes_number_by_first_appearance():
    column = pa.chunked_array([["b", "a"], [], ["c", "a", "d", "b"]])
    codes, n = reader.codes(column)
    assert codes.tolist() == [0, 1, 2, 1, 3, 0] and n == 4


FIELD = st.one_of(st.integers(-3, 30).map(str), st.sampled_from(
    ["", " ", "x", "nan", "2024-05-01", "2024-05-01T10:00:00Z", "1.5", '"q,uoted"', "NA",
     "true", "1e400", "99999999999999999999"]), st.text(max_size=4))
HEADERS = st.lists(st.sampled_from(["user_id", "item_id", "timestamp", "rating", "user",
                                    "ITEM", "ts", "other", "", "user_id:token"]),
                   min_size=1, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(header=HEADERS, rows=st.lists(st.lists(FIELD, min_size=2, max_size=5), max_size=8),
       sep=st.sampled_from([",", "\t", ";", "|"]), blank=st.booleans(),
       min_rating=st.sampled_from([0.0, 2.0]), k_core=st.sampled_from([0, 2]))
def test_random_files_give_a_task_or_one_line(tmp_path, header, rows, sep, blank, min_rating,
                                              k_core):
    text = sep.join(header) + "\n" + ("\n" if blank else "") + "\n".join(
        sep.join(row) for row in rows)
    path = tmp_path / "random.csv"
    path.write_text(text, encoding="utf-8")
    for call in (lambda: build(path, min_rating=min_rating, k_core=k_core),
                 lambda: describe_file(path, min_rating=min_rating, k_core=k_core)):
        try:
            result = call()
        except DataError as exc:
            assert "\n" not in str(exc) and str(exc)
            continue
        if isinstance(result, dict):
            json.dumps(result)
        else:
            assert result.n_items >= 1 and len(result.val) >= 1


@pytest.fixture(scope="module")
def ml100k_csv(tmp_path_factory) -> Path:
    """u.data as a CSV with a header, other column names and string ids (once per module)."""
    source = SHARED / "ml-100k" / "u.data"
    if not source.is_file():
        pytest.skip(f"real ml-100k absent: {source} (../shared/data beside the checkout)")
    rows = np.loadtxt(source, dtype=np.int64)
    path = tmp_path_factory.mktemp("ml100k") / "ratings.csv"
    with path.open("w") as f:
        f.write("userId,movieId,rating,time\n")
        f.writelines(f"u{u},m{i},{r},{t}\n" for u, i, r, t in rows)
    return path


@pytest.mark.parametrize("settings", [{}, {"min_rating": 4, "k_core": 5, "max_len": 20}])
def test_movielens_and_the_same_ratings_as_csv_are_one_task(ml100k_csv, settings):
    movielens = task_of(load_config(overrides={"task": "movielens",
                                                  "data_dir": str(SHARED), **settings}))
    csv_task = task_of(load_config(overrides={
        "task": "interactions", "data": str(ml100k_csv),
        "data_dir": str(ml100k_csv.parent / "data"), **settings}))
    assert movielens.n_items == csv_task.n_items
    assert all(torch.equal(a, b) for a, b in zip(tensors(movielens), tensors(csv_task),
                                                 strict=True))
    for key in ("n_users", "n_interactions", "n_train_targets", "n_val", "n_dropped_k_core"):
        assert movielens.info[key] == csv_task.info[key]
    assert not (SHARED / "cache").exists()  # MovieLens writes nothing into the data folder


def test_no_leftover_temporary_files(tmp_path):
    build(write(tmp_path / "t.csv"))
    assert not [p for p in os.listdir(tmp_path / "data" / "cache") if p.startswith(".")]


def test_the_csv_and_movielens_runs_write_identical_metrics(ml100k_csv, runner, tmp_path):
    """The issue's proof, shortened to 1 epoch of a small model: the same command on the CSV
    (other column names, string ids) and on MovieLens gives the same metrics.csv (all but
    `seconds`)."""
    from lossbench.cli.app import app

    config = str(Path(__file__).parents[1] / "experiments" / "ml-100k.toml")
    common = ["run", "--config", config, "--aux", "none", "--strategy", "plain", "--seed", "0",
              "--set", "epochs=1", "--set", "hidden=16", "--set", "inner=32", "--set",
              "n_layers=1", "--set", "n_heads=1", "--set", "batch_size=256",
              "--min-rating", "5", "--k-core", "5"]  # 5-star ratings only: a quicker proof
    csv_run = runner.invoke(app, [*common, "--task", "interactions", "--data",
                                  str(ml100k_csv), "--data-dir", str(tmp_path / "cache"),
                                  "--out", str(tmp_path / "a")])
    assert csv_run.exit_code == 0, csv_run.output
    ml_run = runner.invoke(app, [*common, "--task", "movielens", "--dataset", "ml-100k",
                                 "--data-dir", str(SHARED), "--out", str(tmp_path / "b")])
    assert ml_run.exit_code == 0, ml_run.output

    csv_rows, ml_rows = (metrics_rows(only_run(tmp_path / out)) for out in ("a", "b"))
    assert len(csv_rows) == 1 and csv_rows == ml_rows
    (folder,) = (tmp_path / "a").iterdir()
    assert folder.name.startswith("ratings-")  # the file's stem names the experiment
    config_json = json.loads(next(folder.glob("*/config.json")).read_text())
    assert len(config_json["data_fingerprint"]["sha256"]) == 64


def test_data_info_is_a_table_for_reading(runner, tmp_path):
    """Rounded numbers, percentiles on one row, the time span as dates; --json keeps the raw
    facts (the sparsity 1 - 8 / 15 and the p99 of lengths 2, 1, 5 unrounded)."""
    from lossbench.cli.app import app

    rows = [("a", "x", 5, "2024-05-01"), ("a", "y", 1, "2024-05-03"),
            ("b", "x", 5, "2024-05-04"), ("c", "x", 2, "2024-05-01"),
            ("c", "y", 2, "2024-05-02"), ("c", "z", 2, "2024-05-05"),
            ("c", "w", 2, "2024-05-07"), ("c", "v", 2, "2024-05-11")]
    path = write(tmp_path / "t.csv", rows=rows)
    raw = json.loads(runner.invoke(app, ["data", "info", str(path), "--json"]).stdout)
    assert raw["sparsity"] == 1 - 8 / 15
    assert raw["sequence_length"]["p99"] == pytest.approx(4.94)
    result = runner.invoke(app, ["data", "info", str(path)])
    assert result.exit_code == 0, result.output
    table = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in result.stdout.splitlines() if line.count("│") == 3}
    assert table["format"] == "csv (delimiter ',')"
    assert table["columns used"] == ("user = user_id  item = item_id  time = timestamp  "
                                     "rating = rating")
    assert table["sparsity"] == "46.67 %"
    assert table["sequence length"] == ("min 1  p25 1.5  p50 2  p75 3.5  p90 4.4  p99 4.9  "
                                        "max 5  mean 2.7")
    assert table["time span"] == "2024-05-01 -> 2024-05-11 (10 days)"
    assert table["split"] == "train targets 3  validation 1  test 1"
    assert "0.4666" not in result.stdout and "4.94" not in result.stdout


def test_a_missing_column_names_the_option_to_type(runner, tmp_path):
    from lossbench.cli.app import app

    path = write(tmp_path / "t.csv", header=("user_id", "item_id", "rating", "when"))
    for args in (["data", "info", str(path)], ["run", "--data", str(path), "--out",
                                               str(tmp_path / "r")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line == (f"error: {path}: no time column (looked for timestamp, time, ts; name "
                        "it with --time-col (time_col in a config file)); columns found: "
                        "user_id, item_id, rating, when")


def test_data_info_and_bad_files_from_the_cli(runner, tmp_path):
    from lossbench.cli.app import app

    path = write(tmp_path / "t.csv")
    result = runner.invoke(app, ["data", "info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["users"] >= 1 and facts["columns"]["user"]
    for bad, message in ((tmp_path / "nope.csv", "not found"), (tmp_path, "folder")):
        result = runner.invoke(app, ["data", "info", str(bad)])
        assert result.exit_code == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(app, ["run", "--data", str(empty), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "empty" in result.stderr
    assert not (tmp_path / "r").exists()
