"""Bring your own data: any interactions file becomes a task, split as MovieLens is.

    task = make_interactions(load_config(overrides={"task": "interactions", "data": "clicks.csv"}))
    facts = describe_file("clicks.csv")          # what `lossbench data info FILE` shows

Reading (`open_layout`, then `read_interactions`):

- Formats: CSV/TSV with a header line, the delimiter sniffed among `,` tab `;` `|` (the one the
  header uses most, preferring those the second line uses as often); RecBole atomic files
  (`.inter`, always tab-separated, typed header `user_id:token item_id:token rating:float
  timestamp:float`); Parquet (recognised by its `PAR1` magic bytes, any file name). A
  `:token`, `:token_seq`, `:float` or `:float_seq` suffix of a header name is dropped in every
  format. Text is UTF-8, fields may be quoted with `"`, empty lines are skipped.
- Columns: `user_col`, `item_col`, `time_col`, `rating_col` name them; empty = the first of
  user_id, userId, user / item_id, itemId, movieId, item / timestamp, time, ts / rating
  (optional) in the header. Names match case-insensitively.
- Ids: values of their column. A column whose values are all integers compares them as
  integers (`7` = `007`), any other column as text. Empty ids are refused.
- Timestamps: integers stay int64, decimals become float64; ISO-8601 dates and date-times
  (`2024-05-01`, `2024-05-01T12:30:05`, with `Z` or `+02:00`) become seconds since
  1970-01-01 UTC (no offset = UTC): int64 when every value is a whole second, else float64.
- Ratings (read only when `min_rating` > 0, or to describe a file): numbers, as float64.
- Bad input (a missing file, a folder, an empty or header-only file, a duplicate or missing
  column, a field that is empty or not a number or date, a row with the wrong number of
  fields) raises DataError, one line naming the file and, where it applies, the line.

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
the columns and format read, min_rating, k_core, max_len and CACHE_VERSION. Written to a
temporary file, then renamed; a folder that cannot be written leaves the task uncached, and a
cache file that does not load or does not fit is rebuilt. The file's SHA-256 is computed
once per process while its size and mtime stay the same. Label noise comes after the cache
(`build_task`).

Parser: pyarrow.csv. Measured on 10 M rows (230 MB CSV, 1 M users, 100 k items, integer ids
and timestamps; benchmarks/bench_interactions.py, 2 CPU cores): read + first-appearance codes
of both id columns: pyarrow 2.7-3.3 s at 0.85-0.95 GiB peak RSS; polars 1.2-1.4 s to read but
4.9-5.4 s for the codes (no first-appearance encoding: `is_first_distinct().cum_sum()` then
`first().over(id)`), 6.3-6.8 s in all at 0.7-0.75 GiB. pyarrow's `dictionary_encode` numbers
values in order of first appearance, which is exactly the id rule, and it brings Parquet.
"""

from __future__ import annotations

import csv
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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import torch

from lossbench.config import RunConfig
from lossbench.data import resolve_data_dir
from lossbench.errors import DataError
from lossbench.tasks import Split, Task

NAMES = {"user": ("user_id", "userId", "user"), "item": ("item_id", "itemId", "movieId", "item"),
         "time": ("timestamp", "time", "ts"), "rating": ("rating",)}
"""Header names looked for when a column is not given, in order (case-insensitive)."""
WHAT = {"user": "user id", "item": "item id", "time": "timestamp", "rating": "rating"}
DELIMITERS = (",", "\t", ";", "|")
RECBOLE_TYPE = re.compile(r":(token|token_seq|float|float_seq)$")
EPOCH_SECONDS = (1e8, 4e9)
"""Timestamps in this range are shown as dates by `describe_file` (1973-03-03 .. 2096-10-02)."""
CACHE_VERSION = 1
"""Part of every cache key: bump it when a change to the pipeline changes its output."""
CHUNK_ROWS = 1 << 14
ARRAYS = ("train_inputs", "train_targets", "held_out", "val_targets", "test_targets")


def arrow_pool() -> pa.MemoryPool:
    """jemalloc where pyarrow has it: after a 10 M-row read it hands the parser's memory back
    (peak 1.6 GiB for the whole build), where the default mimalloc kept ~0.4 GiB (2.0 GiB)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


POOL = arrow_pool()


@dataclass(frozen=True)
class Layout:
    """Where the data of a file is: its format, delimiter, header and the column of each role
    (`columns["rating"]` is "" when the file has none)."""

    path: Path
    format: str
    delimiter: str
    names: list[str]
    columns: dict[str, str]


@dataclass(frozen=True)
class Interactions:
    """Rows of a file in file order: user and item as codes 0..n-1 numbered in order of first
    appearance, time int64 or float64, rating float64 (None when not read)."""

    user: np.ndarray
    item: np.ndarray
    time: np.ndarray
    rating: np.ndarray | None
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray) -> Interactions:
        """The rows at `index`, increasing row numbers (codes unchanged); self when index
        holds every row."""
        if len(index) == len(self):
            return self
        rating = None if self.rating is None else self.rating[index]
        return Interactions(self.user[index], self.item[index], self.time[index], rating,
                            self.n_users, self.n_items)


@dataclass(frozen=True)
class Sequences:
    """All users' items (1..n_items), user after user, each user's in time order: user u's
    items are items[starts[u] : starts[u] + lengths[u]]."""

    items: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    n_items: int


# --- reading ----------------------------------------------------------------------------------

def open_layout(path: str | Path, user_col: str = "", item_col: str = "", time_col: str = "",
                rating_col: str = "") -> Layout:
    """The format, header and columns of the file at `path` (reads its first lines only)."""
    path = Path(path).expanduser()
    try:
        if not path.exists():
            raise DataError(f"interactions file {path} not found")
        if path.is_dir():
            raise DataError(f"{path} is a folder, not an interactions file")
        with path.open("rb") as f:
            head = f.read(1 << 20)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(b"PAR1"):
        try:
            names, fmt, delimiter = pq.read_schema(path).names, "parquet", ""
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read Parquet file {path}: {one_line(exc)}") from None
    else:
        names, fmt, delimiter = read_header(path, head)
    for i, name in enumerate(names):
        if name in names[:i]:
            where_ = "" if fmt == "parquet" else ", line 1"
            raise DataError(f"{path}{where_}: column '{name}' appears twice in the header")
    given = {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col}
    columns = {role: find_column(path, names, role, given[role]) for role in NAMES}
    for role, name in columns.items():
        other = [r for r, n in columns.items() if n == name and r != role]
        if name and other:
            raise DataError(f"{path}: column '{name}' is both the {role} and the {other[0]} "
                            "column; set user_col, item_col, time_col, rating_col apart")
    return Layout(path, fmt, delimiter, names, columns)


def read_header(path: Path, head: bytes) -> tuple[list[str], str, str]:
    """(column names, format, delimiter) from the first bytes of a text file (a line ends at
    LF, CR LF or CR, as for the CSV parser)."""
    lines = re.split(rb"\r\n?|\n", head, maxsplit=2)
    try:
        text = lines[0].decode("utf-8-sig")
        after = lines[1].decode("utf-8", errors="replace") if len(lines) > 2 else ""
    except UnicodeDecodeError:
        raise DataError(f"{path}, line 1: not UTF-8 text; expected a CSV/TSV header, a "
                        "RecBole .inter file or Parquet") from None
    if not text.strip():
        if is_blank(path):
            raise DataError(f"interactions file {path} is empty")
        raise DataError(f"{path}, line 1: empty; expected a header naming the columns")
    counts = {d: text.count(d) for d in DELIMITERS if d in text}
    if path.suffix == ".inter":
        counts = {"\t": 1}
    if not counts:
        raise DataError(f"{path}, line 1: no delimiter (, tab ; |) in the header "
                        f"{shorten(text)!r}; expected e.g. user_id,item_id,timestamp")
    delimiter = max(counts, key=lambda d: (after.count(d) == counts[d], counts[d]))
    fields = next(csv.reader([text], delimiter=delimiter))
    names = [RECBOLE_TYPE.sub("", name.strip()) for name in fields]
    fmt = "inter" if path.suffix == ".inter" else "tsv" if delimiter == "\t" else "csv"
    return names, fmt, delimiter


def is_blank(path: Path) -> bool:
    """True if the file holds nothing but whitespace."""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            if chunk.strip():
                return False
    return True


def find_column(path: Path, names: list[str], role: str, given: str) -> str:
    """The header name for `role`: `given` if set, else the first of NAMES[role] present."""
    lower = [n.lower() for n in names]
    for wanted in [given] if given else NAMES[role]:
        if wanted in names:
            return wanted
        if wanted.lower() in lower:
            return names[lower.index(wanted.lower())]
    if given:
        raise DataError(f"{path} has no column '{given}' (set as {role}_col); "
                        f"{found(names)}")
    if role == "rating":
        return ""
    raise DataError(f"{path}: no {role} column (looked for {', '.join(NAMES[role])}; "
                    f"set {role}_col); {found(names)}")


def found(names: list[str]) -> str:
    """'columns found: a, b, c' (at most 30 names)."""
    return "columns found: " + ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")


def read_interactions(layout: Layout, with_rating: bool = False) -> Interactions:
    """The rows of the file (see the module docstring for ids, timestamps and ratings)."""
    roles = ["user", "item", "time"] + (["rating"] if with_rating else [])
    if with_rating and not layout.columns["rating"]:
        raise DataError(f"{layout.path}: no rating column, which min_rating needs (looked "
                        f"for rating; set rating_col); {found(layout.names)}")
    table = read_table(layout, [layout.columns[r] for r in roles])
    if table.num_rows == 0:
        raise DataError(f"{layout.path} has a header but no rows of data")
    columns = {role: table.column(layout.columns[role]) for role in roles}
    del table
    for role, column in columns.items():
        if pa.types.is_dictionary(column.type):  # Parquet categoricals: plain values
            columns[role] = column = column.cast(column.type.value_type)
        check_present(layout, role, column)
    user, n_users = id_codes(layout, "user", columns.pop("user"))
    item, n_items = id_codes(layout, "item", columns.pop("item"))
    time = to_seconds(layout, columns.pop("time"))
    rating = to_numbers(layout, "rating", columns.pop("rating")) if with_rating else None
    POOL.release_unused()
    return Interactions(user, item, time, rating, n_users, n_items)


def read_table(layout: Layout, names: list[str]) -> pa.Table:
    """The columns `names` of the file, types inferred; all text when inference fails."""
    if layout.format == "parquet":
        try:
            return pq.read_table(layout.path, columns=names)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read Parquet file {layout.path}: {one_line(exc)}") from None
    options = {"read_options": pa_csv.ReadOptions(column_names=layout.names, skip_rows=1),
               "parse_options": pa_csv.ParseOptions(delimiter=layout.delimiter)}
    convert = {"include_columns": names, "null_values": [""], "strings_can_be_null": True}
    try:
        return pa_csv.read_csv(layout.path, **options, memory_pool=POOL,
                               convert_options=pa_csv.ConvertOptions(**convert))
    except pa.ArrowInvalid:
        check_widths(layout)  # a row with too few or too many fields: name its line
    as_text = {name: pa.string() for name in names}
    try:
        return pa_csv.read_csv(layout.path, **options, memory_pool=POOL,
                               convert_options=pa_csv.ConvertOptions(**convert,
                                                                     column_types=as_text))
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot read {layout.path}: {one_line(exc)}") from None


def check_widths(layout: Layout) -> None:
    """DataError naming the first line whose number of fields differs from the header's."""
    with layout.path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=layout.delimiter)
        try:
            next(reader, None)
            for row in reader:
                if row and len(row) != len(layout.names):
                    raise DataError(f"{layout.path}, line {reader.line_num}: {len(row)} "
                                    f"fields, the header has {len(layout.names)} "
                                    f"({shorten(layout.delimiter.join(row))!r})")
        except csv.Error as exc:
            raise DataError(f"{layout.path}, line {reader.line_num}: {exc}") from None


def where(layout: Layout, row: int) -> str:
    """'line N' of data row `row` (0-based, empty lines skipped) in a text file, else 'row N'."""
    if layout.format == "parquet":
        return f"row {row + 1}"
    with layout.path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=layout.delimiter)
        seen = 0
        try:
            next(reader, None)
            for fields in reader:
                if fields and seen == row:
                    return f"line {reader.line_num}"
                seen += bool(fields)
        except csv.Error:
            pass
    return f"data row {row + 1}"


def check_present(layout: Layout, role: str, column: pa.ChunkedArray) -> None:
    """DataError naming the first row whose value of `role` is missing or empty text."""
    missing = column.is_null()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        missing = pc.or_kleene(missing, pc.equal(pc.utf8_trim_whitespace(column), ""))
    row = pc.index(missing, True).as_py()
    if row >= 0:
        raise DataError(f"{layout.path}, {where(layout, row)}: empty {WHAT[role]} in column "
                        f"'{layout.columns[role]}'")


def codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """(codes, n): code k is the k-th distinct value in order of first appearance."""
    encoded = pc.dictionary_encode(column, memory_pool=POOL)  # one dictionary shared by all chunks
    parts = [chunk.indices.to_numpy() for chunk in encoded.chunks]
    return np.concatenate(parts), len(encoded.chunks[-1].dictionary)


def id_codes(layout: Layout, role: str, column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """`codes` of an id column; DataError for a type that has no distinct values (lists)."""
    try:
        return codes(column)
    except pa.ArrowNotImplementedError:
        raise DataError(f"{layout.path}: column '{layout.columns[role]}' holds "
                        f"{column.type}, not {WHAT[role]}s") from None


def to_seconds(layout: Layout, column: pa.ChunkedArray) -> np.ndarray:
    """Timestamps as int64 or float64 (module docstring: the rule)."""
    kind = column.type
    if pa.types.is_date(kind):
        column, kind = column.cast(pa.timestamp("s")), pa.timestamp("s")
    if pa.types.is_timestamp(kind):
        raw = column.cast(pa.int64()).to_numpy()
        per_second = {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}[kind.unit]
        whole = (raw % per_second == 0).all()
        return raw // per_second if whole else raw / per_second
    return to_numbers(layout, "time", column)


def to_numbers(layout: Layout, role: str, column: pa.ChunkedArray) -> np.ndarray:
    """int64 or float64 values of `column`; text is parsed value by value (parse_time for
    timestamps, float for ratings). DataError naming the first row that is not a finite number."""
    kind = column.type
    if pa.types.is_integer(kind):
        try:
            values = column.cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid as exc:
            raise DataError(f"{layout.path}: column '{layout.columns[role]}': "
                            f"{one_line(exc)}") from None
        return values if role == "time" else values.astype(np.float64)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = column.cast(pa.float64()).to_numpy()
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = parse_text(layout, role, column)
    else:
        raise DataError(f"{layout.path}: column '{layout.columns[role]}' holds {kind}, "
                        f"not {WHAT[role]}s")
    bad = np.flatnonzero(~np.isfinite(values)) if values.dtype.kind == "f" else []
    if len(bad):
        raise DataError(f"{layout.path}, {where(layout, int(bad[0]))}: {WHAT[role]} "
                        f"{values[bad[0]]} in column '{layout.columns[role]}' is not a number")
    return values


def parse_text(layout: Layout, role: str, column: pa.ChunkedArray) -> np.ndarray:
    """Parse each distinct text once (in order of first appearance, so the first bad value
    met is the first bad row); int64 if every value is an integer, else float64."""
    encoded = pc.dictionary_encode(column, memory_pool=POOL)
    index = np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks])
    parse = parse_time if role == "time" else float
    values = []
    for code, text in enumerate(encoded.chunks[-1].dictionary.to_pylist()):
        try:
            values.append(parse(text.strip()))
        except (ValueError, OverflowError):
            row = int(np.flatnonzero(index == code)[0])
            kind = "a number or ISO-8601 date" if role == "time" else "a number"
            raise DataError(f"{layout.path}, {where(layout, row)}: {WHAT[role]} "
                            f"{shorten(text)!r} in column '{layout.columns[role]}' is not "
                            f"{kind}") from None
    table = np.array(values)
    if table.dtype.kind not in "if":
        table = np.array(values, dtype=np.float64)
    return table[index]


def parse_time(text: str) -> int | float:
    """An integer, a finite decimal, or an ISO-8601 date/date-time as seconds since
    1970-01-01 UTC (a date-time without offset is UTC). ValueError otherwise."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = moment.timestamp()
        return int(value) if moment.microsecond == 0 else value
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


# --- the pipeline -----------------------------------------------------------------------------

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
                  max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training windows of the sequences items[starts[u] : starts[u] + train_lengths[u]]
    (lossbench.tasks.movielens, step 6). Returns inputs [W, max_len], targets [W, max_len]
    (0 = no target) and the user of each window [W]."""
    n_windows = -(-np.maximum(train_lengths - 1, 0) // max_len)
    users = np.repeat(np.arange(len(starts)), n_windows)
    back = np.arange(len(users)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    ends = starts[users] + train_lengths[users] - back * max_len  # one past the last target
    inputs = histories(items, starts[users], ends - 1, max_len)
    targets = histories(items, starts[users] + 1, ends, max_len)  # a target needs an input
    return inputs, targets, users


def to_sequences(rows: Interactions, min_rating: float, k_core: int, source: str,
                 noun: str = "interactions") -> tuple[Sequences, dict[str, int]]:
    """Steps 1-2: filters, then sequences, and the rows each filter dropped. DataError when
    no row is left, or no user has the 3 items a validation and a test example need."""
    index, dropped = filter_interactions(rows, min_rating, k_core)
    after = f"after min_rating = {min_rating:g} and k_core = {k_core}"
    if not len(index):
        raise DataError(f"no {noun} of {source} are left {after}")
    seqs = user_sequences(rows.take(index))
    if not (seqs.lengths >= 3).any():
        raise DataError(f"no user of {source} has 3 or more {noun} {after}: nothing to "
                        "validate on")
    return seqs, {"n_rows": len(rows), "n_dropped_min_rating": dropped["min_rating"],
                  "n_dropped_k_core": dropped["k_core"]}


def leave_one_out(seqs: Sequences, max_len: int) -> tuple[dict[str, np.ndarray], dict]:
    """Step 3: the arrays of the split (ARRAYS) and their counts. Users with fewer than 3
    items have no validation or test example (`n_train_only_users`)."""
    held = seqs.lengths >= 3
    train_lengths = np.where(held, seqs.lengths - 2, seqs.lengths)
    inputs, targets, _ = train_windows(seqs.items, seqs.starts, train_lengths, max_len)
    ends = (seqs.starts + seqs.lengths)[held]
    arrays = {"train_inputs": inputs, "train_targets": targets,
              "held_out": histories(seqs.items, seqs.starts[held], ends - 1, max_len + 1),
              "val_targets": seqs.items[ends - 2], "test_targets": seqs.items[ends - 1]}
    counts = {"n_users": len(seqs.lengths), "n_items": seqs.n_items,
              "n_interactions": len(seqs.items), "n_train_targets": int((targets > 0).sum()),
              "n_train_windows": len(inputs), "n_val": int(held.sum()),
              "n_test": int(held.sum()), "n_train_only_users": int((~held).sum())}
    return arrays, counts


def build_split(read: Callable[[], Interactions], min_rating: float, k_core: int,
                max_len: int, source: str, noun: str = "interactions"
                ) -> tuple[dict[str, np.ndarray], dict]:
    """The whole pipeline: read, filters and sequences, leave-one-out; (arrays, counts).
    `read` is a function so that no caller holds the rows: they are freed before the padded
    arrays are built (the peak of memory)."""
    seqs, counts = to_sequences(read(), min_rating, k_core, source, noun)
    arrays, split_counts = leave_one_out(seqs, max_len)
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

def make_interactions(cfg: RunConfig) -> Task:
    """The task of the file `cfg.data` (module docstring), named after the file's stem."""
    layout = open_layout(cfg.data, cfg.user_col, cfg.item_col, cfg.time_col, cfg.rating_col)
    with_rating = cfg.min_rating > 0
    sha256 = file_digest(layout.path)
    used = {r: n for r, n in layout.columns.items() if r != "rating" or with_rating}
    settings = {"min_rating": cfg.min_rating, "k_core": cfg.k_core, "max_len": cfg.max_len}
    key = {"sha256": sha256, "format": layout.format, "delimiter": layout.delimiter,
           "columns": used, **settings}

    def build() -> tuple[dict, dict]:
        return build_split(lambda: read_interactions(layout, with_rating), cfg.min_rating,
                           cfg.k_core, cfg.max_len, str(layout.path))

    arrays, counts = cached_split(cfg.data_dir, layout.path.stem, key, cfg.max_len, build)
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
