"""Reading an interactions file into arrays: the first step of `lossbench.tasks.interactions`.

    layout = open_layout("clicks.csv")            # format, header, the columns used
    rows = read_interactions(layout)              # Interactions: user, item, time codes

Reading (`open_layout`, then `read_interactions`):

- Formats: CSV/TSV with a header line, the delimiter sniffed among `,` tab `;` `|` (the one the
  header uses most, preferring those the second line uses as often); RecBole atomic files
  (`.inter`, always tab-separated, typed header `user_id:token item_id:token rating:float
  timestamp:float`); Parquet (recognised by its `PAR1` magic bytes, any file name). A
  `:token`, `:token_seq`, `:float` or `:float_seq` suffix of a header name is dropped in every
  format. Text is UTF-8, fields may be quoted with `"`, empty lines are skipped.
- Columns: `user_col`, `item_col`, `time_col`, `rating_col` name them; empty = the first of
  user_id, userId, user / item_id, itemId, movieId, item / timestamp, time, ts / rating
  (optional) in the header. Names match case-insensitively. Messages name the option a user
  types and the config-file key: `--time-col (time_col in a config file)`, see `options`.
- Ids: values of their column. A column whose values are all integers compares them as
  integers (`7` = `007`), any other column as text. Empty ids are refused.
- Timestamps: integers stay int64, decimals become float64; ISO-8601 dates and date-times
  (`2024-05-01`, `2024-05-01T12:30:05`, with `Z` or `+02:00`) become seconds since
  1970-01-01 UTC (no offset = UTC): int64 when every value is a whole second, else float64.
- Ratings (read only when `min_rating` > 0, or to describe a file): numbers, as float64.
- Bad input (a missing file, a folder, an empty or header-only file, a duplicate or missing
  column, a field that is empty or not a number or date, a row with the wrong number of
  fields) raises DataError, one line naming the file and, where it applies, the line.

Parser: pyarrow.csv, chosen on speed and memory against pandas and polars by
benchmarks/bench_interactions.py (the figures are on the results pages: performance).
pyarrow's `dictionary_encode` numbers values in order of first appearance, which is the id
rule, and pyarrow reads Parquet too.
"""


from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lossbench.errors import DataError

NAMES = {"user": ("user_id", "userId", "user"), "item": ("item_id", "itemId", "movieId", "item"),
         "time": ("timestamp", "time", "ts"), "rating": ("rating",)}
"""Header names looked for when a column is not given, in order (case-insensitive)."""
WHAT = {"user": "user id", "item": "item id", "time": "timestamp", "rating": "rating"}
DELIMITERS = (",", "\t", ";", "|")
RECBOLE_TYPE = re.compile(r":(token|token_seq|float|float_seq)$")




def arrow_pool() -> pa.MemoryPool:
    """jemalloc where pyarrow has it: after a 10 M-row read it hands the parser's memory back;
    the default (mimalloc) kept ~0.3 GiB of it (peak of that build 1.93 GiB, not 1.65)."""
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
                            f"column; name them apart with "
                            f"{options(f'{role}_col', f'{other[0]}_col')}")
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
        raise DataError(f"{path} has no column '{given}' (given as the {role} column by "
                        f"{options(f'{role}_col')}); {found(names)}")
    if role == "rating":
        return ""
    raise DataError(f"{path}: no {role} column (looked for {', '.join(NAMES[role])}; name it "
                    f"with {options(f'{role}_col')}); {found(names)}")


def options(*keys: str) -> str:
    """How a user sets the settings `keys`, for a message: their command-line options and
    their config-file keys. options("time_col") == "--time-col (time_col in a config file)";
    options("user_col", "item_col") == "--user-col and --item-col (user_col, item_col in a
    config file)"."""
    flags = " and ".join(f"--{key.replace('_', '-')}" for key in keys)
    return f"{flags} ({', '.join(keys)} in a config file)"


def found(names: list[str]) -> str:
    """'columns found: a, b, c' (at most 30 names)."""
    return "columns found: " + ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")


def read_interactions(layout: Layout, with_rating: bool = False) -> Interactions:
    """The rows of the file (see the module docstring for ids, timestamps and ratings)."""
    roles = ["user", "item", "time"] + (["rating"] if with_rating else [])
    if with_rating and not layout.columns["rating"]:
        raise DataError(f"{layout.path}: no rating column, which {options('min_rating')} "
                        f"needs (looked for rating; name it with {options('rating_col')}); "
                        f"{found(layout.names)}")
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
