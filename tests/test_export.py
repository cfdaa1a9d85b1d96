"""`lossbench export`: runs into MLflow (a SQLite store in tmp_path, no server) and TensorBoard,
read back with MLflow's client and TensorBoard's event reader; exporting twice duplicates
nothing. Each extra's tests skip with a reason when it is not installed."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from helpers import TINY

from lossbench import api
from lossbench.cli import app
from lossbench.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader:DeprecationWarning")
NEED_MLFLOW = 'MLflow is not installed: pip install "lossbench[mlflow]"'
NEED_TENSORBOARD = 'TensorBoard is not installed: pip install "lossbench[tensorboard]"'


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One comparison (plain and reweight-flood, which has parameters to flatten, 2 seeds,
    3 epochs), with its report and a plots folder: read-only, copy it to change it."""
    out = tmp_path_factory.mktemp("export-results")
    folder = api.run(strategy=["plain", "reweight-flood"], config=TINY, seeds=2, b=3.0,
                     out=out).dir
    api.report(folder)
    (folder / "plots").mkdir()
    (folder / "plots" / "loss_curves.png").write_bytes(b"\x89PNG not really")
    return folder


@pytest.fixture(scope="module")
def mlflow_client():
    pytest.importorskip("mlflow", reason=NEED_MLFLOW)
    from mlflow.tracking import MlflowClient

    return MlflowClient


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    """One SQLite store for the module (creating its tables takes MLflow ~5 s); each test
    exports into its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def rows_of(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def run_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "config.json").exists())


def exported_runs(client, name: str = "lossbench") -> list:
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], max_results=1000)


# --- MLflow ----------------------------------------------------------------------------


def test_mlflow_runs_params_metrics_tags_and_artifacts(mlflow_client, mlflow_uri, results):
    uri = mlflow_uri
    done = api.export(results, to="mlflow", tracking_uri=uri)
    assert sorted(done["actions"].values()) == ["new"] * 5  # 4 runs + the folder's parent
    client = mlflow_client(uri)
    runs = {r.data.tags["lossbench.run"]: r for r in exported_runs(client)}
    parent = runs.pop(results.name)
    assert {p.path for p in client.list_artifacts(parent.info.run_id)} >= {
        "report.md", "report.json", "plots"}
    assert parent.data.params["task"] == "synthetic" and "strategy" not in parent.data.params
    assert len(runs) == 4
    for run_dir in run_dirs(results):
        run = runs[f"{results.name}/{run_dir.name}"]
        config = json.loads((run_dir / "config.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
        tags, params = run.data.tags, run.data.params
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert (tags["strategy"], tags["seed"], tags["b"]) == (
            config["strategy"], str(config["seed"]), str(config["b"]))
        assert tags["run_folder"] == str(run_dir.resolve()) and tags["status"] == "complete"
        assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
        assert params["strategy"] == config["strategy"] and params["epochs"] == "3"
        for name, value in config["params"].items():  # strategy parameters, flattened
            assert params[name] == json.dumps(value)
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert [(m.step, m.value) for m in history] == [
            (int(r["epoch"]), float(r["val_loss"])) for r in rows_of(run_dir)]
        assert run.data.metrics["summary/test_loss"] == summary["test_loss"]
        assert run.data.metrics["summary/best_epoch"] == summary["best_epoch"]
    assert "alpha" in runs[next(k for k in runs if "reweight-flood" in k)].data.params


def test_mlflow_export_twice_duplicates_nothing_and_replaces_a_changed_run(
        mlflow_client, mlflow_uri, results, tmp_path):
    folder = tmp_path / results.name
    shutil.copytree(results, folder)
    uri = mlflow_uri
    first = api.export(folder, to="mlflow", tracking_uri=uri, experiment_name="twice")
    again = api.export(folder, to="mlflow", tracking_uri=uri, experiment_name="twice")
    assert set(again["actions"].values()) == {"unchanged"} and again["ids"] == first["ids"]
    changed = run_dirs(folder)[0]  # now an interrupted run (exported too, with its epochs)
    (changed / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    third = api.export(folder, to="mlflow", tracking_uri=uri, experiment_name="twice")
    key = f"{folder.name}/{changed.name}"
    assert third["actions"][key] == "replaced"
    assert sorted(third["actions"].values()).count("unchanged") == 4
    client = mlflow_client(uri)
    runs = exported_runs(client, "twice")
    assert len(runs) == 5  # the old version of the changed run is deleted, not listed
    (newest,) = [r for r in runs if r.data.tags["lossbench.run"] == key]
    assert newest.info.status == "KILLED" and newest.data.tags["status"] == "interrupted"
    assert "summary/test_loss" not in newest.data.metrics
    assert len(client.get_metric_history(newest.info.run_id, "val_loss")) == 3


@pytest.mark.parametrize("uri", ["file:./mlruns", "mlruns"])
def test_mlflow_file_store_is_refused_in_one_line(mlflow_client, results, uri):
    with pytest.raises(ConfigError, match="file store is in maintenance mode") as error:
        api.export(results, to="mlflow", tracking_uri=uri)
    assert "\n" not in str(error.value) and "sqlite:///mlflow.db" in str(error.value)


# --- TensorBoard -----------------------------------------------------------------------


def read_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_tensorboard_scalars_per_epoch_and_hparams(results, tmp_path):
    pytest.importorskip("tensorboard", reason=NEED_TENSORBOARD)
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    done = api.export(results, to="tensorboard", logdir=tmp_path / "runs")
    assert sorted(done["actions"].values()) == ["new"] * 4
    for run_dir in run_dirs(results):
        events = read_events(tmp_path / "runs" / results.name / run_dir.name)
        rows = rows_of(run_dir)
        for column in ("train_loss", "val_loss", "val_ndcg10", "theta"):
            assert [(e.step, e.value) for e in events.Scalars(column)] == [
                (int(r["epoch"]), pytest.approx(float(r[column]), rel=1e-6)) for r in rows]
        summary = json.loads((run_dir / "summary.json").read_text())
        (test_loss,) = events.Scalars("summary/test_loss")
        assert test_loss.value == pytest.approx(summary["test_loss"], rel=1e-6)
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["strategy"].string_value == summary["strategy"]
        assert hparams["seed"].number_value == summary["seed"]
        assert hparams["status"].string_value == "complete"
        assert "_hparams_/experiment" not in events.PluginTagToContent("hparams")


def test_tensorboard_export_twice_replaces_each_run_folder(results, tmp_path):
    pytest.importorskip("tensorboard", reason=NEED_TENSORBOARD)
    api.export(results, to="tensorboard", logdir=tmp_path)
    files = sorted(p.parent for p in tmp_path.rglob("events.out.tfevents.*"))
    again = api.export(results, to="tensorboard", logdir=tmp_path)
    assert set(again["actions"].values()) == {"replaced"}
    assert sorted(p.parent for p in tmp_path.rglob("events.out.tfevents.*")) == files
    assert len(files) == 4  # one events file per run, none left from the first export
    run = files[0]
    assert len(read_events(run).Scalars("val_loss")) == 3


# --- the command -----------------------------------------------------------------------


def test_cli_export(runner, results, tmp_path):
    pytest.importorskip("tensorboard", reason=NEED_TENSORBOARD)
    result = runner.invoke(app, ["export", str(results), "--to", "tensorboard",
                                 "--logdir", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert "exported 4 runs to TensorBoard logdir" in result.stdout
    assert "(4 new, 0 replaced, 0 unchanged)" in result.stdout
    assert f"tensorboard --logdir {tmp_path / 'tb'}" in result.stdout
    for args, message in (
            (["--to", "wandb"], "error: --to must be mlflow or tensorboard, got 'wandb'"),
            (["--to", "mlflow", "--tracking-uri", "file:./mlruns"], "error: --tracking-uri "
             "file:./mlruns: MLflow's file store is in maintenance mode")):
        if "mlflow" in args and not mlflow_installed():
            continue
        bad = runner.invoke(app, ["export", str(results), *args])
        assert bad.exit_code == 2
        (line,) = bad.stderr.strip().splitlines()
        assert line.startswith(message)
    missing = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--to", "tensorboard"])
    assert missing.exit_code == 2 and "no such results folder" in missing.stderr


def mlflow_installed() -> bool:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True
