"""`lossbench data`: describe an interactions file (`info`), and find, download, verify
(SHA-256) and extract MovieLens (`download`; `run` calls `ensure_data` before training)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lossbench.cli import OneLineErrors, console, guard
from lossbench.cli_options import (
    ItemColOpt,
    KCoreOpt,
    MinRatingOpt,
    RatingColOpt,
    TimeColOpt,
    UserColOpt,
)


def ensure_data(cfg) -> None:
    """For MovieLens, find or download the data set up front, with a download bar."""
    if cfg.task != "movielens":
        return
    download_with_progress(cfg.dataset, cfg.data_dir)


def download_with_progress(dataset: str, data_dir: str, url: str | None = None,
                           sha256: str | None = None) -> Path:
    """data.download_dataset with a rich bar (shown only while bytes arrive)."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from lossbench.data import download_dataset

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


@data_app.command("info")
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

    from lossbench.tasks.interactions import describe_file

    with guard():
        facts = describe_file(path, user_col or "", item_col or "", time_col or "",
                              rating_col or "", min_rating or 0.0, k_core or 0)
        if as_json:
            print(json.dumps(facts, indent=2, default=str))
            return
        table = Table(title=f"lossbench data info {path}", show_header=False)
        table.add_column("fact", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in facts.items():
            table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list)
                          else str(value))
        console.print(table)


@data_app.command("download")
def data_download(
    dataset: Annotated[str, typer.Argument(help="ml-100k or ml-1m.")],
    data_dir: Annotated[str, typer.Option(
        help="Data folder (default $LOSSBENCH_DATA_DIR, else ~/.cache/lossbench).")] = "",
    url: Annotated[str | None, typer.Option(
        help="Archive URL instead of GroupLens (or set $LOSSBENCH_MOVIELENS_URL_BASE).")] = None,
    sha256: Annotated[str | None, typer.Option(
        help="Expected SHA-256 of the archive (default: the published one).")] = None,
) -> None:
    """Download, verify and extract a MovieLens data set; uses it if it is already there."""
    with guard():
        folder = download_with_progress(dataset, data_dir, url=url, sha256=sha256)
        console.print(f"{dataset} ready in {folder}")
