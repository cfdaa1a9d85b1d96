"""plot.py: the figure objects hold the expected curves, and files come out as valid
PNG / SVG / PDF. Real run folders from tests/tiny.toml (4 strategies x 3 seeds, shared with
test_report)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lossbench import plot, report
from lossbench.errors import ConfigError
from lossbench.recorder import write_json

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}
SWEEP = {"select": "val_loss", "selected_b": 0.2, "grid": [0.0, 0.1, 0.2],
         "per_b": {"0": {"val": {"mean": 3.4, "lo": 3.3, "hi": 3.5},
                         "test": {"mean": 3.5, "lo": 3.4, "hi": 3.6}},
                   "0.1": {"val": {"mean": 3.3, "lo": 3.2, "hi": 3.4},
                           "test": {"mean": 3.4, "lo": 3.3, "hi": 3.5}},
                   "0.2": {"val": {"mean": 3.2, "lo": None, "hi": None}, "test": {}}}}


@pytest.fixture(scope="session")
def experiment(tiny_experiment) -> Path:
    return tiny_experiment


@pytest.fixture(scope="module")
def loaded(experiment):
    runs = report.load_runs(experiment)
    return runs, report.summarize(runs)


def solid_lines(ax) -> list:
    return [line for line in ax.get_lines() if line.get_linestyle() == "-"]


def test_figures_hold_one_mean_curve_per_group(loaded):
    runs, summary = loaded
    figures = plot.make_figures(runs, summary)
    assert set(figures) == {"loss_curves", "val_metrics", "weights"}
    train_ax, val_ax = figures["loss_curves"].axes
    assert len(val_ax.get_lines()) == 4  # plain, reweight, flood b=4, reweight-flood b=4
    assert len(val_ax.collections) == 4  # one shaded band each
    assert len(solid_lines(train_ax)) == 4
    dashed = [line for line in train_ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [4.0, 4.0]  # b of the 2 flood groups
    assert val_ax.get_xlabel() == "epoch" and "nats" in val_ax.get_ylabel()
    assert "synthetic" in figures["loss_curves"].get_suptitle()
    metrics = figures["val_metrics"].axes
    assert [ax.get_title() for ax in metrics] == ["val_acc", "val_hr10", "val_ndcg10"]
    assert all(len(ax.get_lines()) == 4 for ax in metrics)
    (theta_ax,) = figures["weights"].axes  # only θ: the seed's four log nothing else
    assert len(theta_ax.get_lines()) == 2  # reweight and reweight-flood only


def test_no_theta_figure_without_reweight_and_log_scale(loaded):
    runs, _ = loaded
    kept = [r for r in runs if not r.config["strategy"].startswith("reweight")]
    figures = plot.make_figures(kept, report.summarize(kept), log_loss=True)
    assert "weights" not in figures
    assert all(ax.get_yscale() == "log" for ax in figures["loss_curves"].axes)
    assert len(figures["loss_curves"].axes[1].get_lines()) == 2


def test_sweep_figure_marks_selected_b(loaded):
    runs, summary = loaded
    fig = plot.make_figures(runs, summary, sweep=SWEEP)["sweep"]
    val_ax, test_ax = fig.axes
    marker = [line for line in val_ax.get_lines() if line.get_linestyle() == "--"]
    assert list(marker[0].get_xdata()) == [0.2, 0.2]
    assert list(solid_lines(val_ax)[0].get_xdata()) == [0.0, 0.1, 0.2]
    assert val_ax.get_xlabel().startswith("flood level b") and test_ax.get_ylabel() == (
        "test_loss (nats)")
    assert "sweep" not in plot.make_figures(runs, summary, sweep={"select": "val_loss"})


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_plot_results_writes_valid_files(loaded, tmp_path, fmt):
    runs, summary = loaded
    paths = plot.plot_results(runs, summary, tmp_path, fmt=fmt)
    assert [p.name for p in paths] == [f"loss_curves.{fmt}", f"val_metrics.{fmt}",
                                       f"weights.{fmt}"]
    for path in paths:
        assert path.parent == tmp_path / "plots"
        assert path.read_bytes().startswith(MAGIC[fmt])
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary files left behind


def test_plot_results_draws_sweep_json(experiment, tmp_path):
    shutil.copytree(experiment, tmp_path / experiment.name)
    write_json(tmp_path / "sweep.json", SWEEP)
    runs = report.load_runs(tmp_path)
    paths = plot.plot_results(runs, report.summarize(runs), tmp_path)
    assert (tmp_path / "plots" / "sweep.png") in paths
    assert (tmp_path / "plots" / "sweep.png").read_bytes().startswith(MAGIC["png"])


def test_unknown_format_is_a_config_error(loaded, tmp_path):
    runs, summary = loaded
    with pytest.raises(ConfigError, match="png, svg, pdf"):
        plot.plot_results(runs, summary, tmp_path, fmt="jpg")
