"""`lossbench report`, `lossbench plot` and `lossbench export`: a results folder read from
disk (lossbench/results/), as tables, figures, or runs in MLflow / TensorBoard.

    lossbench report [RESULTS_DIR]     # statistics over seeds, report.json and report.md
    lossbench plot [RESULTS_DIR]       # figures into RESULTS_DIR/plots/
    lossbench export results/<experiment> --to mlflow [--tracking-uri sqlite:///mlflow.db]
    lossbench export results/<experiment> --to tensorboard [--logdir runs]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lossbench.cli.app import app, chosen_folder, guard
from lossbench.cli.display import console
from lossbench.cli.options import ReadOutOpt, ResultsArg

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""export.DEFAULT_TRACKING_URI, written out: this module is imported by `lossbench --help`,
which must not import export.py (numpy). tests/test_cli.py checks that the two agree."""

ToOpt = Annotated[str, typer.Option(
    "--to", metavar="mlflow|tensorboard",
    help="mlflow (runs, params, per-epoch metrics, plots and report as artifacts) or "
    "tensorboard (scalars per epoch, settings in the HParams tab).", show_default=False)]
TrackingUriOpt = Annotated[str, typer.Option(
    metavar="URI",
    help="mlflow: the tracking store, a database (sqlite:///file.db, postgresql://...) or "
    "an http(s):// tracking server. MLflow's file store (file:...) is not accepted.")]
ExperimentNameOpt = Annotated[str, typer.Option(
    metavar="NAME",
    help="mlflow: the MLflow experiment; each results folder is a parent run in it.")]
LogdirOpt = Annotated[Path, typer.Option(
    metavar="DIR",
    help="tensorboard: the log folder; each run goes to DIR/EXPERIMENT/RUN_FOLDER/.")]


@app.command("report", short_help="Statistics over seeds: mean, 95 % CI, paired tests.")
def report_command(
    results_dir: ResultsArg = None,
    out: ReadOutOpt = Path("results"),
    window: Annotated[int, typer.Option(
        metavar="N", help="Moving-average window for double descent.")] = 5,
    rise: Annotated[float, typer.Option(
        metavar="X", help="Peak must be >= rise x first minimum.")] = 1.03,
    recover: Annotated[float, typer.Option(
        metavar="FRACTION",
        help="Fraction of the rise the second descent must win back.")] = 0.3,
    full: Annotated[bool, typer.Option(
        "--full", help="Print every table (every metric of every group, every paired "
        "difference), as report.md has them.")] = False,
) -> None:
    """Statistics over seeds: mean +- 95 % CI, paired tests against plain, double descent."""
    from lossbench import api  # here, not at the top: api imports torch, --help must not
    from lossbench.results import tables as report_tables  # numpy, likewise

    with guard():
        summary, paths = api.report(chosen_folder(results_dir, out), window=window, rise=rise,
                                    recover=recover)
        if summary.get("kind") == "tune-report":
            print_verdict(summary, full)
        else:
            for table in report_tables.render_tables(summary, full=full):
                console.print(table)
        for path in paths:
            console.print(f"wrote {path}")


def print_verdict(summary: dict, full: bool = False) -> None:
    """A tune's verdict (results/verdict.py): its tables, then its sentences."""
    from lossbench.results.verdict_tables import describe_tune, verdict_tables

    console.print(describe_tune(summary), markup=False, highlight=False, soft_wrap=True)
    for table in verdict_tables(summary, full=full):
        console.print(table)
    console.print("verdict:", markup=False)
    for sentence in summary["sentences"]:
        console.print(f"- {sentence}", markup=False, highlight=False, soft_wrap=True)


@app.command("plot", short_help="Draw a results folder's figures.")
def plot_command(
    results_dir: ResultsArg = None,
    out: ReadOutOpt = Path("results"),
    format_: Annotated[str, typer.Option(
        "--format", metavar="png|svg|pdf", help="Figure file format.")] = "png",
    log_loss: Annotated[bool, typer.Option("--log-loss", help="Log scale for losses.")] = False,
) -> None:
    """Figures of a results folder into RESULTS_DIR/plots/: losses, metrics, theta, sweep."""
    from lossbench import api  # here, not at the top: api imports torch, --help must not

    with guard():
        for path in api.plot(chosen_folder(results_dir, out), fmt=format_, log_loss=log_loss):
            console.print(str(path))


def counts(actions: dict[str, str]) -> str:
    """`12 new, 0 replaced, 0 unchanged` for the runs (keys with a `/`) of an export."""
    runs = [a for key, a in actions.items() if "/" in key]
    return ", ".join(f"{runs.count(a)} {a}" for a in ("new", "replaced", "unchanged"))


@app.command("export", short_help="Export runs to MLflow or TensorBoard.")
def export_command(
    to: ToOpt,
    results_dir: ResultsArg = None,
    tracking_uri: TrackingUriOpt = DEFAULT_TRACKING_URI,
    experiment_name: ExperimentNameOpt = "lossbench",
    logdir: LogdirOpt = Path("runs"),
    out: ReadOutOpt = Path("results"),
) -> None:
    """Export a results folder's runs to MLflow or TensorBoard; exporting again replaces
    changed runs instead of duplicating them."""
    from lossbench import api  # here, not at the top: api imports torch, --help must not

    with guard():
        done = api.export(chosen_folder(results_dir, out), to=to, tracking_uri=tracking_uri,
                          experiment_name=experiment_name, logdir=logdir)
        n_runs = sum("/" in key for key in done["actions"])
        console.print(f"exported {n_runs} runs to {done['target']} ({counts(done['actions'])})",
                      markup=False, highlight=False)
        view = (f"tensorboard --logdir {logdir}" if to == "tensorboard" else
                f"open {tracking_uri}" if tracking_uri.startswith("http") else
                f"mlflow ui --backend-store-uri {tracking_uri}")
        console.print(f"view them: {view}", markup=False, highlight=False)


@app.command("migrate", short_help="Rename results folders of earlier versions to today's names.")
def migrate_command(
    results_dir: Annotated[Path, typer.Argument(
        metavar="RESULTS_DIR", help="A results folder, or a folder holding them.")
    ] = Path("results"),
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the renames without making them.")] = False,
) -> None:
    """Rename the run, experiment and sweep folders written before lossbench 0.2 (whose names
    hashed every setting) to today's names, so the same command finds them again: complete
    runs are skipped and unfinished ones resumed."""
    from lossbench import api  # here, not at the top: api imports torch, --help must not

    with guard():
        renames = api.migrate(results_dir, dry_run=dry_run)
        for old, new in renames:
            console.print(f"{old} -> {new.name}", markup=False, highlight=False, soft_wrap=True)
        verb = "would rename" if dry_run else "renamed"
        console.print(f"{verb} {len(renames)} folders", markup=False, highlight=False)
