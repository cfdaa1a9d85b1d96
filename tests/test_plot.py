"""plot.py: the figure objects hold the expected curves, and files come out as valid
PNG / SVG / PDF. Real run folders from tests/tiny.toml (4 strategies x 3 seeds, shared with
test_report; at b = 4, below plain's training loss, flood never acts and equals plain;
reweight's training loss is lower and reweight-flood acts), and a flood level sweep of it."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY

from lossbench import api
from lossbench.errors import ConfigError
from lossbench.results import plot, plot_sweep, report
from lossbench.results.folders import write_json

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


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[int, Path]:
    """`lossbench sweep-b` of tiny on b = 1 (below its training loss of ~7.5: never acts,
    equals plain) and b = 8 (acts), with 1 seed, then the same sweep with 2 seeds in a
    copy of it (seed 0's runs are reused): {n_seeds: sweep folder}."""
    one = Path(api.sweep_b(b_grid=[1.0, 8.0], seeds=1, config=TINY,
                           out=tmp_path_factory.mktemp("one-seed"))["dir"])
    two = tmp_path_factory.mktemp("two-seeds") / one.name
    shutil.copytree(one, two)
    api.sweep_b(b_grid=[1.0, 8.0], seeds=2, config=TINY, out=two.parent)
    return {1: one, 2: two}


def figures_of(folder: Path) -> dict:
    runs = report.load_runs(folder)
    return plot.make_figures(runs, report.summarize(runs), report.load_sweep(folder))


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_legend_names_groups_identical_to_another_from_their_numbers(loaded, sweeps):
    runs, summary = loaded
    figures = plot.make_figures(runs, summary)
    assert legend_texts(figures["loss_curves"])[:4] == [
        "plain (n=3)", "reweight (n=3)", "flood b=4 (= plain; n=3)", "reweight-flood b=4 (n=3)"]
    assert "flood b=4 (= plain; n=3)" in legend_texts(figures["val_metrics"])
    changed = copy.deepcopy(runs)  # one number of one flood run differs: no longer identical
    flood = next(r for r in changed if r.config["strategy"] == "flood")
    flood.rows[-1]["val_loss"] += 1e-6
    assert "flood b=4 (n=3)" in legend_texts(plot.make_figures(changed, summary)["loss_curves"])
    texts = legend_texts(figures_of(sweeps[2])["loss_curves"])
    assert "flood b=1 (= plain; n=2)" in texts and "flood b=8 (n=2)" in texts


def test_puzzle_epochs_sit_on_a_strip_under_the_validation_panel(loaded):
    runs, summary = loaded
    assert len(plot.make_figures(runs, summary)["loss_curves"].axes) == 2  # no puzzle, no strip
    puzzle = [{"label": label, "seed": seed, "spans": [[2, 3]]}
              for label in ("plain", "flood b=4", "reweight") for seed in (0, 1)]
    fig = plot.make_figures(runs, {**summary, "overconfidence": puzzle})["loss_curves"]
    train_ax, val_ax, strip = fig.axes
    assert strip.get_label() == plot.PUZZLE_STRIP and not val_ax.patches  # none over curves
    assert strip.get_shared_x_axes().joined(strip, val_ax)
    fig.draw_without_rendering()
    assert strip.get_position().y1 < val_ax.get_position().y0  # under the panel
    assert strip.get_position().height < val_ax.get_position().height / 3  # a thin strip
    bars = strip.patches  # one per run: plain and reweight; flood b=4 is plain's lane
    assert [(p.get_x(), p.get_width()) for p in bars] == [(1.5, 2.0)] * 4
    assert len({p.get_facecolor() for p in bars}) == 2
    assert any(t.startswith("puzzle: val loss ↑") for t in legend_texts(fig))


def test_one_seed_figures_say_one_seed_no_band(loaded, sweeps):
    runs, summary = loaded
    for name, fig in plot.make_figures(runs, summary).items():
        assert "shaded 95% t-interval" in fig.get_suptitle(), name
    one = [r for r in runs if r.config["seed"] == 0]
    figures = plot.make_figures(one, report.summarize(one))
    for name, fig in figures.items():
        assert "1 seed, no band" in fig.get_suptitle(), name
        assert "interval" not in fig.get_suptitle(), name
    sweep = figures_of(sweeps[1])["sweep"]
    assert "1 seed, no band" in sweep.get_suptitle()
    assert "1 seed, no band" not in figures_of(sweeps[2])["sweep"].get_suptitle()


def test_sweep_draws_the_baseline_as_a_line_and_the_paired_difference_per_seed(sweeps):
    folder = sweeps[2]
    sweep = json.loads((folder / "sweep.json").read_text())
    fig = figures_of(folder)["sweep"]
    val_ax, test_ax, val_diff, test_diff = fig.axes
    (mean,) = [line for line in val_ax.get_lines() if line.get_label() == "val_loss: mean"]
    assert list(mean.get_xdata()) == [1.0, 8.0]  # no point at b = 0 ...
    low, high = val_ax.get_xlim()
    assert 0.5 < low < 1.0 and 8.0 < high < 8.5  # ... so the grid spans the axis
    (base,) = [line for line in val_ax.get_lines() if line.get_label().startswith("plain")]
    plain = sweep["per_value"]["0"]["val"]["per_seed"]
    assert list(base.get_ydata()) == pytest.approx([np.mean(plain)] * 2)
    assert list(base.get_xdata()) == [0, 1]  # axes fraction: a horizontal line
    assert all(e["seeds"] == [0, 1] for e in sweep["per_value"].values())
    expected = [[sweep["per_value"][b]["val"]["per_seed"][s] - plain[s] for b in ("1", "8")]
                for s in (0, 1)]
    seed_lines = [line for line in val_diff.get_lines() if line.get_linewidth() == 0.9]
    np.testing.assert_allclose([line.get_ydata() for line in seed_lines], expected)
    assert [e[0] for e in expected] == [0.0, 0.0]  # b = 1 never acted: the same as plain
    assert not val_diff.collections  # 2 seeds: no paired t-band, the seeds themselves
    assert val_diff.get_ylabel() == "val_loss − plain (nats)"
    assert test_diff.get_xlabel().startswith("flood level b")
    dashed = [line for line in val_ax.get_lines() if line.get_linestyle() == "--"]
    if sweep["selected"] == 0:
        assert base.get_label().endswith("selected") and not dashed
    else:
        assert list(dashed[0].get_xdata()) == [sweep["selected"]] * 2


def test_paired_band_needs_three_seeds():
    """Differences at b = 1 over 3 seeds (0.1, 0.2, 0.3: mean 0.2, t-band 0.2 ± 0.248) and at
    b = 2 over 2 seeds (no band): the band covers b = 1 only."""
    from matplotlib.figure import Figure

    paired = {1.0: {"seeds": [0, 1, 2], "diffs": [0.1, 0.2, 0.3], "mean": 0.2, "lo": -0.048,
                    "hi": 0.448, "n": 3},
              2.0: {"seeds": [0, 1], "diffs": [0.4, 0.6], "mean": 0.5, "lo": -0.77,
                    "hi": 1.77, "n": 2}}
    ax = Figure().subplots()
    plot_sweep.draw_paired_panel(ax, paired, "C0", "plain", 0.95)
    seeds = [list(line.get_ydata()) for line in ax.get_lines() if line.get_linewidth() == 0.9]
    assert seeds == [[0.1, 0.4], [0.2, 0.6], [0.3]]
    (band,) = ax.collections
    assert band.get_label() == "paired 95% t-interval"
    assert band.get_paths()[0].get_extents().ymin == pytest.approx(-0.048)
    assert band.get_paths()[0].get_extents().ymax == pytest.approx(0.448)


def test_sweep_figure_of_an_old_sweep_json_and_of_another_parameter(loaded):
    runs, summary = loaded
    fig = plot.make_figures(runs, summary, sweep=SWEEP)["sweep"]
    val_ax, test_ax = fig.axes  # no paired runs of this sweep in the folder: one row
    marker = [line for line in val_ax.get_lines() if line.get_linestyle() == "--"]
    assert list(marker[0].get_xdata()) == [0.2, 0.2]
    assert list(solid_lines(val_ax)[0].get_xdata()) == [0.1, 0.2]
    assert solid_lines(val_ax)[1].get_label().startswith("b = 0 (no flooding")
    assert val_ax.get_xlabel().startswith("flood level b") and test_ax.get_ylabel() == (
        "test_loss (nats)")
    assert "sweep" not in plot.make_figures(runs, summary, sweep={"select": "val_loss"})
    w_sweep = {**SWEEP, "param": "w", "selected": 0.1, "per_value": SWEEP["per_b"]}
    val_ax, _ = plot.make_figures(runs, summary, sweep=w_sweep)["sweep"].axes
    assert list(solid_lines(val_ax)[0].get_xdata()) == [0.0, 0.1, 0.2]  # no baseline: all
    assert len(val_ax.collections) == 1 and val_ax.get_xlabel() == "w"  # sweep.json's band


def test_plot_results_writes_valid_files(loaded, tmp_path):
    runs, summary = loaded
    paths = plot.plot_results(runs, summary, tmp_path)
    assert [p.name for p in paths] == ["loss_curves.png", "val_metrics.png", "weights.png"]
    for path in paths:
        assert path.parent == tmp_path / "plots"
        assert path.read_bytes().startswith(MAGIC["png"])
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_other_formats_are_valid_files(loaded, tmp_path, fmt):
    """Every figure is saved the same way (save_figure): one figure shows the format."""
    runs, summary = loaded
    fig = plot.make_figures(runs, summary)["weights"]
    plot.save_figure(fig, tmp_path / f"weights.{fmt}", fmt)
    assert (tmp_path / f"weights.{fmt}").read_bytes().startswith(MAGIC[fmt])
    assert [p.name for p in tmp_path.iterdir()] == [f"weights.{fmt}"]


def test_a_results_folder_with_sweep_json_gets_the_sweep_figure(experiment, tmp_path):
    """plot_results reads the folder's sweep.json (load_sweep); `lossbench plot` of a real
    sweep writing sweep.png is tests/test_sweep.py's."""
    shutil.copytree(experiment, tmp_path / experiment.name)
    write_json(tmp_path / "sweep.json", SWEEP)
    runs = report.load_runs(tmp_path)
    figures = plot.make_figures(runs, report.summarize(runs), plot.load_sweep(tmp_path))
    assert list(figures) == ["loss_curves", "val_metrics", "weights", "sweep"]


def test_unknown_format_is_a_config_error(loaded, tmp_path):
    runs, summary = loaded
    with pytest.raises(ConfigError, match="png, svg, pdf"):
        plot.plot_results(runs, summary, tmp_path, fmt="jpg")
