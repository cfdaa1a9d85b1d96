"""`lossbench export`: a results folder into MLflow or TensorBoard (lossbench/results/export.py).

    lossbench export results/<experiment> --to mlflow [--tracking-uri sqlite:///mlflow.db]
    lossbench export results/<experiment> --to tensorboard [--logdir runs]

Registered in cli.py with `app.command("export")(export_command)`. It imports cli.py's
`guard`, `console` and `chosen_folder` when called, so cli.py may import this module at its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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


def counts(actions: dict[str, str]) -> str:
    """`12 new, 0 replaced, 0 unchanged` for the runs (keys with a `/`) of an export."""
    runs = [a for key, a in actions.items() if "/" in key]
    return ", ".join(f"{runs.count(a)} {a}" for a in ("new", "replaced", "unchanged"))


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
    from lossbench import api
    from lossbench.cli.app import chosen_folder, console, guard

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
