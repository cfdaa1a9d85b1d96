"""`lossbench export`: run folders into MLflow or TensorBoard, to browse them there.

    export_mlflow("results/synthetic-91f440ad", tracking_uri="sqlite:///mlflow.db")
    export_tensorboard("results/synthetic-91f440ad", logdir="runs")

Both read the folder with `report.load_runs` (a run, an experiment, a sweep or a whole
`results/`; incomplete runs too, with the epochs they have) and know each run by its *key*,
`<experiment folder>/<run folder>`, which stays the same when the results are moved.

MLflow: one parent run per experiment folder (its plots/, report.md, report.json and
sweep.json as artifacts when present; the settings its runs share as params), and under it one
run per run folder: params = its settings with the strategy parameters flattened
(`folders.settings_of`), every metrics.csv column as a metric with step = epoch, the numbers
of summary.json as `summary/<key>`, tags strategy, seed, b, status and run_folder. A run is
found again by its tag `lossbench.run`: exported unchanged (same files) it is skipped, changed
(say, finished since) it is deleted and exported anew.

TensorBoard: `<logdir>/<key>/` per run, replaced on every export: metrics.csv's columns as
scalars with step = epoch, `summary/<key>` scalars, and the run's settings for the HParams
tab (without an experiment summary, so TensorBoard takes the union of every run's settings
and metrics and the tab compares strategies across comparisons).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossbench.errors import ConfigError, DataError
from lossbench.results.folders import read_json, settings_of
from lossbench.results.report import RUN_FILES, Run, load_runs

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
FOLDER_ARTIFACTS = ("report.md", "report.json", "sweep.json")
"""Files of an experiment folder logged on its parent run (with the plots/ folder)."""
MLFLOW_STATUS = {"complete": "FINISHED", "diverged": "FAILED"}
"""summary.json status -> MLflow run status; anything else (interrupted, incomplete) KILLED."""
KEY_TAG, FINGERPRINT_TAG = "lossbench.run", "lossbench.fingerprint"


@dataclass
class Exported:
    """What an export did: where to, and per run key (experiment folder keys included for
    MLflow's parent runs) `new`, `replaced` or `unchanged`; `ids` are MLflow run ids or
    TensorBoard run folders."""

    target: str
    actions: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


def run_key(run: Run) -> str:
    """`<experiment folder>/<run folder>`: how a run is known in MLflow and TensorBoard."""
    return f"{run.dir.parent.name}/{run.dir.name}"


def status_of(run: Run) -> str:
    """summary.json's status (complete, diverged, interrupted), or `incomplete`."""
    if run.summary is not None:
        return run.summary["status"]
    try:
        return str(read_json(run.dir / "summary.json").get("status", "incomplete"))
    except DataError:
        return "incomplete"


def summary_metrics(run: Run) -> dict[str, float]:
    """summary.json's numbers (bools as 0/1) as `summary/<key>`; an incomplete run has none."""
    return {f"summary/{k}": float(v) for k, v in (run.summary or {}).items()
            if isinstance(v, int | float)}


def param_text(value: Any) -> str:
    """A setting as MLflow stores params: strings as they are, other values as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def fingerprint(paths: list[Path], extra: str = "") -> str:
    """A hash of the names and bytes of the files that exist among `paths`, and `extra`."""
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def millis(run: Run, name: str) -> int:
    """When a run file was last written, in ms (MLflow's start and end times)."""
    path = run.dir / name
    return int((path.stat().st_mtime if path.exists() else time.time()) * 1000)


def batches(items: list, size: int) -> list[list]:
    """`items` in consecutive chunks of at most `size` (MLflow's log_batch limits)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def by_folder(runs: list[Run]) -> dict[Path, list[Run]]:
    """Runs grouped by their experiment folder, in path order."""
    groups: dict[Path, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.dir.parent, []).append(run)
    return groups


# --- MLflow ----------------------------------------------------------------------------


def require_mlflow() -> Any:
    """MlflowClient, or a ConfigError saying what to install."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError('export --to mlflow needs MLflow, which is not installed: '
                          'pip install "lossbench[mlflow]"') from None
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating tables" chatter
    return MlflowClient


def check_tracking_uri(uri: str) -> None:
    """MLflow's file store (a `file:` URI or a bare path) is in maintenance mode and refuses
    new data: say so in one line. Creates the folder of a sqlite database file."""
    if uri.startswith("file:") or "://" not in uri and not uri.startswith("databricks"):
        raise ConfigError(f"--tracking-uri {uri}: MLflow's file store is in maintenance mode "
                          f"and refuses new runs; use a database such as "
                          f"{DEFAULT_TRACKING_URI} (or an http(s):// tracking server)")
    database = sqlite_path(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI, else None."""
    if uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of the MLflow experiment `name`, created when missing; with a sqlite database
    its artifacts go to `mlartifacts/` beside the database file (as `mlflow server` does),
    not to the current folder."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage != "active":
            raise ConfigError(f"MLflow experiment '{name}' is deleted: restore it or give "
                              "another --experiment-name")
        return experiment.experiment_id
    database = sqlite_path(uri)
    location = (database.resolve().parent / "mlartifacts").as_uri() if database else None
    return client.create_experiment(name, artifact_location=location)


def runs_by_key(client: Any, experiment: str) -> dict[str, Any]:
    """The active runs of the experiment that lossbench exported, by their key tag."""
    found, token = {}, None
    while True:
        page = client.search_runs([experiment], max_results=1000, page_token=token)
        found.update({r.data.tags[KEY_TAG]: r for r in page if KEY_TAG in r.data.tags})
        token = page.token
        if not token:
            return found


def export_mlflow(results_dir: str | Path, tracking_uri: str = DEFAULT_TRACKING_URI,
                  experiment_name: str = "lossbench") -> Exported:
    """Every run folder of `results_dir` into the MLflow experiment `experiment_name` (see
    the module docstring). MLflow errors (an unreachable server, say) are ConfigErrors."""
    runs = load_runs(results_dir)
    client_class = require_mlflow()
    check_tracking_uri(tracking_uri)
    from mlflow.exceptions import MlflowException

    done = Exported(f"MLflow experiment '{experiment_name}' at {tracking_uri}")
    try:
        client = client_class(tracking_uri)
        experiment = experiment_id(client, experiment_name, tracking_uri)
        existing = runs_by_key(client, experiment)
        for folder, group in by_folder(runs).items():
            parent = export_folder(client, experiment, folder, group, existing, done)
            for run in group:
                export_run(client, experiment, run, parent, existing, done)
    except MlflowException as exc:
        raise ConfigError(f"MLflow ({tracking_uri}): {str(exc.message).splitlines()[0]}"
                          ) from None
    return done


def replace_run(client: Any, experiment: str, key: str, fp: str, existing: dict,
                done: Exported, **create: Any) -> tuple[str, bool]:
    """(run id, whether it is new) for `key`: the existing run when its fingerprint is
    `fp`, else a new run (the old one deleted). `create`: create_run's arguments."""
    old = existing.get(key)
    if old is not None and old.data.tags.get(FINGERPRINT_TAG) == fp:
        done.actions[key] = "unchanged"
        return old.info.run_id, False
    if old is not None:
        client.delete_run(old.info.run_id)
    done.actions[key] = "replaced" if old is not None else "new"
    tags = {KEY_TAG: key, FINGERPRINT_TAG: fp, **create.pop("tags")}
    return client.create_run(experiment, tags=tags, **create).info.run_id, True


def export_folder(client: Any, experiment: str, folder: Path, runs: list[Run],
                  existing: dict, done: Exported) -> str:
    """The parent run of an experiment folder: the settings all its runs share as params,
    the folder's plots and reports as artifacts. Returns its id."""
    from mlflow.entities import Param

    plots = sorted((folder / "plots").glob("*")) if (folder / "plots").is_dir() else []
    files = [folder / name for name in FOLDER_ARTIFACTS if (folder / name).is_file()]
    settings = [settings_of(run.config) for run in runs]
    shared = {k: v for k, v in settings[0].items() if all(s.get(k) == v for s in settings)}
    fp = fingerprint([*plots, *files], json.dumps(shared, sort_keys=True, default=str))
    run_id, new = replace_run(client, experiment, folder.name, fp, existing, done,
                              run_name=folder.name, tags={"run_folder": str(folder.resolve())})
    done.ids[folder.name] = run_id
    if new:
        params = [Param(k, param_text(v)) for k, v in sorted(shared.items())]
        for chunk in batches(params, 100):
            client.log_batch(run_id, params=chunk)
        for path in files:
            client.log_artifact(run_id, str(path))
        if plots:
            client.log_artifacts(run_id, str(folder / "plots"), artifact_path="plots")
        client.set_terminated(run_id, "FINISHED")
    return run_id


def export_run(client: Any, experiment: str, run: Run, parent: str, existing: dict,
               done: Exported) -> None:
    """One run folder as an MLflow run under `parent` (see the module docstring)."""
    from mlflow.entities import Metric, Param

    key, status = run_key(run), status_of(run)
    tags = {"mlflow.parentRunId": parent, "strategy": str(run.config.get("strategy")),
            "seed": str(run.config.get("seed")), "b": str(run.config.get("b")),
            "status": status, "run_folder": str(run.dir.resolve())}
    fp = fingerprint([run.dir / name for name in RUN_FILES])
    run_id, new = replace_run(client, experiment, key, fp, existing, done,
                              run_name=run.dir.name, start_time=millis(run, "config.json"),
                              tags=tags)
    done.ids[key] = run_id
    if not new:
        if existing[key].data.tags.get("mlflow.parentRunId") != parent:
            client.set_tag(run_id, "mlflow.parentRunId", parent)  # the parent was replaced
        return
    stamp = millis(run, "metrics.csv")
    metrics = [Metric(k, float(v), stamp, int(row["epoch"]))
               for row in run.rows for k, v in row.items() if k != "epoch"]
    metrics += [Metric(k, v, stamp, 0) for k, v in summary_metrics(run).items()]
    params = [Param(k, param_text(v)) for k, v in sorted(settings_of(run.config).items())]
    for chunk in batches(params, 100):
        client.log_batch(run_id, params=chunk)
    for chunk in batches(metrics, 1000):
        client.log_batch(run_id, metrics=chunk)
    client.set_terminated(run_id, MLFLOW_STATUS.get(status, "KILLED"),
                          end_time=millis(run, "summary.json"))


# --- TensorBoard -----------------------------------------------------------------------


def require_tensorboard() -> tuple[Any, Any]:
    """torch's SummaryWriter and its `hparams` summary, or a ConfigError saying what to
    install (both need the tensorboard package). Every TensorBoard import goes through here."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
    except ImportError:
        raise ConfigError('export --to tensorboard needs TensorBoard, which is not installed: '
                          'pip install "lossbench[tensorboard]"') from None
    return SummaryWriter, hparams


def hparams_of(run: Run) -> dict[str, Any]:
    """The HParams tab's values for a run: its settings (numbers, strings and bools as they
    are, anything else as JSON) and its status."""
    values = {k: v if isinstance(v, int | float | str | bool) else json.dumps(v)
              for k, v in settings_of(run.config).items()}
    return {**values, "status": status_of(run)}


def export_tensorboard(results_dir: str | Path, logdir: str | Path = "runs") -> Exported:
    """Every run folder of `results_dir` into `<logdir>/<run key>/` (see the module
    docstring); the folder is replaced, so exporting again never duplicates a run."""
    runs = load_runs(results_dir)
    writer_class, hparams = require_tensorboard()
    logdir = Path(logdir)
    done = Exported(f"TensorBoard logdir {logdir}")
    for run in runs:
        key = run_key(run)
        target = logdir / key
        done.actions[key] = "replaced" if target.exists() else "new"
        shutil.rmtree(target, ignore_errors=True)
        try:
            writer = writer_class(log_dir=str(target))
        except OSError as exc:
            raise ConfigError(f"cannot write to {target}: {exc.strerror or exc}") from None
        with writer:
            for row in run.rows:
                for name, value in row.items():
                    if name != "epoch":
                        writer.add_scalar(name, value, int(row["epoch"]))
            summary = summary_metrics(run)
            for name, value in summary.items():
                if math.isfinite(value):
                    writer.add_scalar(name, value, 0)
            _, session_start, session_end = hparams(hparams_of(run), summary)
            writer.file_writer.add_summary(session_start)
            writer.file_writer.add_summary(session_end)
        done.ids[key] = str(target)
    return done
