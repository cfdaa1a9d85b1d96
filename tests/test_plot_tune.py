"""plot_tune.py: the figures of a tune folder, from hand-built tune.json dicts (test_verdict's
make_tune: four arms, 3 trials each, 6 final seeds; no training)."""

from __future__ import annotations

import numpy as np
import pytest
from test_verdict import make_tune

from lossbench.errors import ConfigError
from lossbench.results import plot_tune, verdict


@pytest.fixture(scope="module")
def figures() -> dict:
    return plot_tune.tune_figures(make_tune())


def test_an_unknown_format_is_a_config_error(tmp_path):
    """(The files of a real tune are checked by test_tune.py, each format's by test_plot.py:
    the figures share `save_figure`.)"""
    with pytest.raises(ConfigError, match="png, svg, pdf"):
        plot_tune.plot_tune(make_tune(), tmp_path, fmt="jpg")
    assert not (tmp_path / "plots").exists()


def test_no_params_figure_when_no_arm_has_a_space():
    tune = make_tune()
    for arm in tune["arms"]:
        arm["space"] = []
    assert list(plot_tune.tune_figures(tune)) == ["tune_history", "tune_final"]


def test_history_is_the_best_so_far_per_arm(figures):
    (ax,) = figures["tune_history"].axes
    steps = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert len(steps) == 4  # one per arm
    # weighted: trials score 4.6, 4.4 and a diverged one, shifted by its SHIFT mean
    weighted = steps[2].get_ydata()
    assert weighted[0] > weighted[1] == pytest.approx(weighted[2])
    assert ax.get_xlabel() == "trial (0-based)" and ax.get_ylabel() == "val_loss (nats)"
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert [list(c.get_ydata()) for c in crosses] == [[5.01]]  # at the chance value
    legend = [t.get_text() for leg in figures["tune_history"].legends for t in leg.get_texts()]
    assert "weighted, 1 diverged (×)" in legend


def test_final_figure_agrees_with_the_summary(figures):
    summary = verdict.summarize_tune(make_tune())
    seeds_ax, iqm_ax, improve_ax = figures["tune_final"].axes
    assert [t.get_text() for t in seeds_ax.get_yticklabels()] == [
        "main-only", "plain", "weighted", "reweight-flood"]
    means = list(seeds_ax.containers)  # errorbar containers: one per arm
    assert [float(c.lines[0].get_xdata()[0]) for c in means] == pytest.approx(
        [a["metrics"]["test_loss"]["mean"] for a in summary["arms"]])
    hollow = [line for line in seeds_ax.get_lines() if line.get_markerfacecolor() == "none"
              and len(line.get_xdata())]
    assert [list(line.get_xdata()) for line in hollow] == [[5.01]]  # the diverged seed
    assert len(iqm_ax.patches) == 4  # one IQM interval per arm
    assert len(improve_ax.patches) == 3  # every arm but plain
    dotted = [line for line in improve_ax.get_lines() if line.get_linestyle() == ":"]
    assert list(dotted[0].get_xdata()) == [0.5, 0.5]
    bars = {round(p.get_y() + p.get_height() / 2): p for p in improve_ax.patches}
    flood = next(e for e in summary["paired"]["plain"] if e["label"] == "reweight-flood")
    d = flood["metrics"]["test_loss"]
    assert bars[3].get_x() == pytest.approx(d["p_improve_lo"])
    assert bars[3].get_width() == pytest.approx(d["p_improve_hi"] - d["p_improve_lo"])


def test_final_figure_without_plain_has_two_panels():
    tune = make_tune(("main-only", "reweight-flood"))
    assert len(plot_tune.tune_figures(tune)["tune_final"].axes) == 2


def test_params_grid_has_a_cell_per_tuned_parameter(figures):
    fig = figures["tune_params"]
    visible = fig.axes  # a cell only where the arm tunes the parameter
    titles = [ax.get_title() for ax in visible]
    assert titles == ["main-only: lr", "plain: lr", "weighted: lr", "weighted: w",
                      "reweight-flood: lr", "reweight-flood: b",
                      "reweight-flood: detach_theta"]
    lr = visible[0]
    assert lr.get_xscale() == "log"  # lr's range is log, the axis spans it
    assert lr.get_xlim() == pytest.approx((0.05 / 1.08, 1.0 * 1.08))
    spans = {ax.get_title(): ax.get_subplotspec() for ax in visible}
    assert spans["reweight-flood: b"].colspan.start == 2  # the w column left empty
    assert spans["reweight-flood: b"].rowspan.start == 3
    theta = visible[-1]
    assert [t.get_text() for t in theta.get_xticklabels()] == ["false", "true"]
    stars = [line for line in theta.get_lines() if line.get_marker() == "*"]
    assert list(stars[0].get_xdata()) == [1.0]  # the chosen trial: detach_theta = true
    chosen_lr = [line for line in lr.get_lines() if line.get_marker() == "*"]
    assert list(chosen_lr[0].get_xdata()) == [0.31]
    assert np.isfinite(list(chosen_lr[0].get_ydata())).all()
