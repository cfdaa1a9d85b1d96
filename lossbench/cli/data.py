"""`lossbench data`: describe an interactions file (`info`), and find, download, verify
(SHA-256) and extract MovieLens (`download`; `run` calls `ensure_data` before training)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lossbench.cli.app import OneLineErrors, app, guard
from lossbench.cli.display import console
from lossbench.cli.options import (
    ItemColOpt,
    KCoreOpt,
    MinRatingOpt,
    RatingColOpt,
    TimeColOpt,
    UserColOpt,
)


def ensure_data(cfg) -> None:
    """For MovieLens, find or download the data set up front, with a download bar."""
    if cfg.task.name != "movielens":
        return
    download_with_progress(cfg.task.file.dataset, cfg.task.file.data_dir)


def download_with_progress(dataset: str, data_dir: str, url: str | None = None,
                           sha256: str | None = None) -> Path:
    """data.download_dataset with a rich bar (shown only while bytes arrive)."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from lossbench.tasks.download import download_dataset  # tasks import torch: not at the top

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                  transient=True) as bars:
        bar = bars.add_task(f"downloading {dataset}", total=None)
        return download_dataset(
            dataset, data_dir, url=url, sha256=sha256,
            progress=lambda done, total: bars.update(bar, completed=done, total=total))


data_app = typer.Typer(cls=OneLineErrors, no_args_is_help=True,
                       help="Data: describe your interactions file (info); download, verify "
                            "(SHA-256) and extract MovieLens (download).")
app.add_typer(data_app, name="data",
              short_help="Describe your interactions file; download MovieLens.")


@data_app.command("info", short_help="Describe an interactions file and its split.")
def data_info(
    path: Annotated[Path, typer.Argument(help="An interactions file (CSV/TSV with a header, "
                                         "RecBole .inter, Parquet).")],
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    rating_col: RatingColOpt = None,
    min_rating: MinRatingOpt = None,
    k_core: KCoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """What a file holds and what lossbench would make of it: users, items, interactions,
    sparsity, sequence lengths, time span, and what the filters and the split drop."""
    import json

    from lossbench.tasks.interactions import describe_file  # torch: not for --help

    with guard():
        facts = describe_file(path, user_col or "", item_col or "", time_col or "",
                              rating_col or "", min_rating or 0.0, k_core or 0)
        if as_json:
            print(json.dumps(facts, indent=2, default=str))
            return
        table = Table(title=f"lossbench data info {path}", show_header=False)
        table.add_column("fact", style="bold")
        table.add_column("value", overflow="fold")
        for fact, value in info_rows(facts):
            table.add_row(fact, value)
        console.print(table, markup=False, highlight=False)
        console.print("--json prints these facts unrounded", markup=False, highlight=False)


def info_rows(facts: dict) -> list[tuple[str, str]]:
    """The table of `data info`: (fact, value) rows of describe_file's facts, for reading.
    Counts with thousands separators, sparsity in percent, sequence-length percentiles on
    one row (one decimal at most), the time span as dates when the timestamps are epoch
    seconds (`time_span`), filters by the options that set them; "-" for a fact that is
    None (nothing left after the filters)."""
    columns = facts["columns"]
    lengths, dropped, split = facts["sequence_length"], facts["dropped"], facts["split"]
    delimiter = {"": "", "\t": " (tab-separated)"}.get(facts["delimiter"],
                                                       f" (delimiter {facts['delimiter']!r})")
    return [
        ("file", facts["file"]),
        ("format", facts["format"] + delimiter),
        ("columns used", "  ".join(f"{role} = {name or '-'}" for role, name in columns.items())),
        ("columns in the file", ", ".join(facts["columns_found"])),
        ("rows", f"{facts['rows']:,}"),
        ("users", f"{facts['users']:,}"),
        ("items", f"{facts['items']:,}"),
        ("interactions", f"{facts['interactions']:,} (after the filters)"),
        ("sparsity", "-" if facts["sparsity"] is None else f"{100 * facts['sparsity']:.2f} %"),
        ("sequence length", "-" if lengths is None else
         "  ".join(f"{key} {number(value)}" for key, value in lengths.items())),
        ("time span", "-" if facts["time"] is None else time_span(facts["time"])),
        ("filters", f"--min-rating {facts['filters']['min_rating']:g}  "
                    f"--k-core {facts['filters']['k_core']}"),
        ("dropped", f"{dropped['rows_min_rating']:,} rows by --min-rating, "
                    f"{dropped['rows_k_core']:,} by --k-core; {dropped['users_too_short']:,} "
                    "users with < 3 interactions (training only)"),
        ("split", f"train targets {split['train_targets']:,}  validation {split['val']:,}  "
                  f"test {split['test']:,}"),
    ]


def number(value: float) -> str:
    """A sequence length or percentile for reading: at most one decimal (1131.4, 12)."""
    return f"{round(value, 1):,g}" if abs(value) < 1e6 else f"{value:,.0f}"


def time_span(time: dict) -> str:
    """`2020-09-13 -> 2021-01-07 (116 days)` (date-times below a day) when describe_file
    found epoch seconds (first_date set), else the first and last values as they are."""
    first, last = time["first"], time["last"]
    if time["first_date"] is None:
        return f"{number(first)} -> {number(last)} (not epoch seconds: shown as found)"
    shape = "%Y-%m-%d" if last - first >= 86400 else "%Y-%m-%d %H:%M:%S UTC"
    dates = [datetime.fromtimestamp(t, UTC).strftime(shape) for t in (first, last)]
    return f"{dates[0]} -> {dates[1]} ({duration(last - first)})"


def duration(seconds: float) -> str:
    """A time span in the largest unit it holds twice: days, hours, minutes, else seconds."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:g} seconds"


@data_app.command("download", short_help="Download, verify and extract a MovieLens data set.")
def data_download(
    dataset: Annotated[str, typer.Argument(help="ml-100k or ml-1m.")],
    data_dir: Annotated[str, typer.Option(
        metavar="DIR",
        help="Data folder (default $LOSSBENCH_DATA_DIR, else ~/.cache/lossbench).")] = "",
    url: Annotated[str | None, typer.Option(
        metavar="URL",
        help="Archive URL instead of GroupLens (or set $LOSSBENCH_MOVIELENS_URL_BASE).")] = None,
    sha256: Annotated[str | None, typer.Option(
        metavar="HEX",
        help="Expected SHA-256 of the archive (default: the published one).")] = None,
) -> None:
    """Download, verify and extract a MovieLens data set; uses it if it is already there."""
    with guard():
        folder = download_with_progress(dataset, data_dir, url=url, sha256=sha256)
        console.print(f"{dataset} ready in {folder}")
