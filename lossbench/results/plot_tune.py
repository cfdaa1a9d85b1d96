"""Figures of a tune folder, from its tune.json: how each arm's tuning went, how the chosen
settings compare on the final seeds, and the score against each tuned parameter. The numbers
of the final comparison are verdict.summarize_tune's, so the figure and the report agree;
nothing here computes a statistic.

    paths = plot_tune(verdict.load_tune(folder), folder, fmt="png")

Figures (in <folder>/plots/): tune_history (best-so-far validation score against trial),
tune_final (the verdict metric per arm over the final seeds; IQM; P(improve) over tuned
plain), tune_params (score against each tuned parameter; only when some arm tuned any).
Matplotlib's object API with the Agg canvas, as plot.py: no pyplot, no global figure state.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lossbench.errors import ConfigError
from lossbench.results.plot import FORMATS, add_legend, group_colors, save_figure
from lossbench.results.plot_sweep import BAND_ALPHA
from lossbench.results.verdict import check_tune, lower_is_better, summarize_tune
from lossbench.results.verdict_tables import describe_tune

JITTER = 0.15
"""Half-height of the vertical spread of the per-seed dots around an arm's row."""


def unit(metric: str) -> str:
    return " (nats)" if metric.endswith("loss") else ""


def two_lines(facts: str) -> str:
    """describe_tune's facts line cut in two at the ` · ` nearest its middle, to fit a
    figure's title."""
    parts = facts.split(" · ")
    if len(parts) < 4:
        return facts
    cut = min(range(1, len(parts)),
              key=lambda i: abs(len(" · ".join(parts[:i])) - len(facts) / 2))
    return " · ".join(parts[:cut]) + "\n" + " · ".join(parts[cut:])


def arm_colors(tune: dict) -> dict[str, tuple]:
    """One colour per arm, in tune.json's order (plot.group_colors)."""
    return group_colors([{"label": a["arm"]} for a in tune["arms"]])


def trial_scores(arm: dict, chance: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(number, score, diverged) of an arm's trials by number; a trial without a score (its
    runs diverged) scores `chance` (nan when unknown) and is flagged."""
    trials = sorted(arm["trials"], key=lambda t: t["number"])
    missing = np.array([t.get("score") is None for t in trials], dtype=bool)
    fill = math.nan if chance is None else chance
    score = np.array([fill if t.get("score") is None else t["score"] for t in trials],
                     dtype=float)
    return np.array([t["number"] for t in trials]), score, missing


def best_so_far(score: np.ndarray, missing: np.ndarray, lower: bool) -> np.ndarray:
    """The best score among trials 0..i for each i (diverged trials never count); nan
    before the first trial with a score."""
    s = np.where(missing, math.nan, score)
    return np.fmin.accumulate(s) if lower else np.fmax.accumulate(s)


def history_figure(tune: dict, colors: dict, facts: str) -> Figure:
    """Per arm the best-so-far validation score (`select`) against trial number (a step
    line), each trial's score as a faint dot, the chosen trial as a star; trials whose runs
    diverged are crosses at the chance value (or left out, said in the legend, when
    tune.json gives none). facts: the line under the title (verdict_tables.describe_tune)."""
    select, lower = tune["select"], lower_is_better(tune["select"])
    chance = (tune.get("chance") or {}).get(select)
    fig = Figure(figsize=(9.6, 5.2), layout="constrained")
    fig.suptitle(f"Tuning history: best {select} so far per arm ({tune['trials']} trials "
                 f"each, mean over the tuning seeds)\n{facts}",
                 fontsize=11)
    ax = fig.subplots()
    handles: list = []
    for arm in tune["arms"]:
        color = colors[arm["arm"]]
        number, score, missing = trial_scores(arm, chance)
        best = best_so_far(score, missing, lower)
        note = ""
        if missing.any():
            note = (f", {missing.sum()} diverged (×)" if chance is not None else
                    f", {missing.sum()} diverged, not drawn")
        (line,) = ax.step(number, best, where="post", color=color, lw=1.8,
                          label=f"{arm['arm']}{note}")
        handles.append(line)
        ax.plot(number[~missing], score[~missing], ls="", marker=".", color=color, alpha=0.4)
        if chance is not None and missing.any():
            ax.plot(number[missing], score[missing], ls="", marker="x", color=color)
        chosen = arm["chosen"]
        if chosen.get("trial") is not None and chosen.get("score") is not None:
            ax.plot([chosen["trial"]], [chosen["score"]], ls="", marker="*", ms=12,
                    color=color, mec="k", mew=0.6)
    handles += [Line2D([], [], ls="", marker=".", color="grey", label="each trial"),
                Line2D([], [], ls="", marker="*", ms=10, color="grey", mec="k", mew=0.6,
                       label="chosen trial")]
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1.0)
        handles.append(Line2D([], [], color="grey", ls=":", label=f"chance ({chance:.3g})"))
    ax.grid(alpha=0.3)
    ax.set_xlabel("trial (0-based)")
    ax.set_ylabel(select + unit(select))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    add_legend(fig, handles)
    return fig


def arm_rows(ax: Axes, labels: list[str]) -> None:
    """Arms as rows, top to bottom in tune.json's order."""
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(alpha=0.3, axis="x")


def draw_seeds_panel(ax: Axes, summary: dict, colors: dict) -> None:
    """Per arm each final seed's verdict metric (dots, jittered up and down; diverged seeds
    hollow) and the mean with its t-interval (a diamond with a bar)."""
    metric = summary["facts"]["verdict_metric"]
    jitter = np.random.default_rng(0)
    for row, arm in enumerate(summary["arms"]):
        stat, color = arm["metrics"][metric], colors[arm["label"]]
        values = np.array([math.nan if v is None else v for v in stat["per_seed"]])
        gone = np.isin(arm["seeds"], arm["diverged_seeds"])
        y = row + jitter.uniform(-JITTER, JITTER, len(values))
        ax.plot(values[~gone], y[~gone], ls="", marker="o", ms=4, color=color, alpha=0.6)
        ax.plot(values[gone], y[gone], ls="", marker="o", ms=5, mfc="none", color=color)
        if stat["mean"] is not None:
            err = None if stat["lo"] is None else [[stat["mean"] - stat["lo"]],
                                                   [stat["hi"] - stat["mean"]]]
            ax.errorbar([stat["mean"]], [row], xerr=err, fmt="D", color="k", mfc=color,
                        ms=7, capsize=4, lw=1.6, zorder=3)
    ci = f"{round(100 * summary['options']['confidence'])}%"
    ax.set_title(f"mean and {ci} t-interval over the final seeds\n(dots: each seed; hollow: "
                 "diverged, scored at chance)", fontsize=10)
    ax.set_xlabel(metric + unit(metric))


def draw_interval_panel(ax: Axes, points: list[tuple[int, float | None, float | None,
                                                     float | None, tuple]]) -> None:
    """rliable's look: per row a translucent bar over [lo, hi] and a line at the point.
    points: (row, point, lo, hi, colour)."""
    for row, point, lo, hi, color in points:
        if lo is not None and hi is not None:
            ax.barh(row, hi - lo, left=lo, height=0.6, color=color, alpha=3 * BAND_ALPHA)
        if point is not None:
            ax.plot([point, point], [row - 0.3, row + 0.3], color="k", lw=2.0)


def final_figure(summary: dict, colors: dict) -> Figure:
    """The final comparison on verdict_metric. Left: each seed and the mean with its
    t-interval per arm. Right, the aggregate view: the IQM with its stratified-bootstrap
    interval per arm and, when a plain arm exists, P(arm beats tuned plain on a seed) with
    its bootstrap interval, a dotted line at 0.5 (no difference)."""
    metric, labels = summary["facts"]["verdict_metric"], [a["label"] for a in summary["arms"]]
    vs_plain = {e["label"]: e["metrics"][metric] for e in summary["paired"].get("plain", [])}
    n_panels = 3 if vs_plain else 2
    fig = Figure(figsize=(4.2 * n_panels + 1.2, 1.2 + 0.55 * len(labels) + 2.2),
                 layout="constrained")
    fig.suptitle(f"Final comparison on {metric} ({'lower' if lower_is_better(metric) else 'higher'}"
                 f" is better), the chosen setting of each arm retrained on the final seeds\n"
                 f"{two_lines(describe_tune(summary))}", fontsize=11)
    axes = fig.subplots(1, n_panels, sharey=True,
                        width_ratios=[1.4, 1.0, 1.0][:n_panels])
    for ax in axes:
        arm_rows(ax, labels)
    draw_seeds_panel(axes[0], summary, colors)
    ci = f"{round(100 * summary['options']['confidence'])}%"
    draw_interval_panel(axes[1], [
        (row, a["metrics"][metric]["iqm"], a["metrics"][metric]["iqm_lo"],
         a["metrics"][metric]["iqm_hi"], colors[a["label"]])
        for row, a in enumerate(summary["arms"])])
    axes[1].set_title(f"IQM over the final seeds\n({ci} stratified-bootstrap interval)",
                      fontsize=10)
    axes[1].set_xlabel(f"IQM of {metric}{unit(metric)}")
    if vs_plain:
        draw_interval_panel(axes[2], [
            (row, d["p_improve"], d["p_improve_lo"], d["p_improve_hi"], colors[label])
            for row, label in enumerate(labels) if (d := vs_plain.get(label))])
        axes[2].axvline(0.5, color="k", ls=":", lw=1.2)
        axes[2].set_xlim(-0.02, 1.02)
        axes[2].set_title(f"P(arm beats tuned plain on a seed)\n(paired; {ci} bootstrap "
                          "interval; 0.5: no difference)", fontsize=10)
        axes[2].set_xlabel("probability of improvement")
    return fig


def param_axis(ax: Axes, spec: dict, values: list) -> np.ndarray:
    """x positions of the trials' values of one parameter: the values themselves for a
    number (log axis for a log range; the axis spans the range low..high), else category
    positions 0..k-1 labelled by the choices (bool, choice)."""
    if spec.get("type") in ("float", "int") and not spec.get("choices"):
        low, high = spec.get("low"), spec.get("high")
        if spec.get("log"):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            if low is not None and high is not None and 0 < low < high:
                ax.set_xlim(low / 1.08, high * 1.08)
        elif low is not None and high is not None and low < high:
            ax.set_xlim(low - 0.04 * (high - low), high + 0.04 * (high - low))
        return np.array([math.nan if v is None else float(v) for v in values])
    choices = list(spec.get("choices") or dict.fromkeys(values))
    ax.set_xticks(range(len(choices)), [str(c).lower() if isinstance(c, bool) else str(c)
                                        for c in choices])
    ax.set_xlim(-0.5, len(choices) - 0.5)
    return np.array([choices.index(v) if v in choices else math.nan for v in values],
                    dtype=float)


def draw_param_cell(ax: Axes, arm: dict, spec: dict, score: np.ndarray,
                    missing: np.ndarray, color: tuple, select: str) -> None:
    """One arm's trials against one parameter: dots, diverged trials as crosses, the
    chosen trial as a star."""
    trials = sorted(arm["trials"], key=lambda t: t["number"])
    x = param_axis(ax, spec, [t["params"].get(spec["name"]) for t in trials])
    ax.plot(x[~missing], score[~missing], ls="", marker="o", ms=5, color=color, alpha=0.7)
    ax.plot(x[missing], score[missing], ls="", marker="x", color=color)
    chosen = [i for i, t in enumerate(trials) if t["number"] == arm["chosen"].get("trial")]
    if chosen:
        ax.plot(x[chosen], score[chosen], ls="", marker="*", ms=14, color=color, mec="k",
                mew=0.8)
    ax.set_title(f"{arm['arm']}: {spec['name']}", fontsize=10)
    ax.set_xlabel(f"{spec['name']} ({spec.get('kind', 'parameter')}; "
                  f"{spec.get('range_text') or 'range'})", fontsize=9)
    ax.set_ylabel(select + unit(select))
    ax.grid(alpha=0.3)


def params_figure(tune: dict, colors: dict, facts: str) -> Figure | None:
    """The score of every trial against each tuned parameter: a grid with one row per arm
    that has a space and one column per parameter (in order of first appearance); a cell
    whose arm does not tune that parameter has no axes. None when no arm tuned anything."""
    arms = [a for a in tune["arms"] if a.get("space")]
    if not arms:
        return None
    names = list(dict.fromkeys(p["name"] for a in arms for p in a["space"]))
    select = tune["select"]
    chance = (tune.get("chance") or {}).get(select)
    fig = Figure(figsize=(max(3.2 * len(names), 7.0), 2.6 * len(arms) + 1.0),
                 layout="constrained")
    fig.suptitle(f"{select} of each trial against the tuned parameters\n(mean over the tuning "
                 f"seeds; ★ chosen, × diverged)\n{facts}",
                 fontsize=11 if len(names) > 2 else 9)
    grid = fig.add_gridspec(len(arms), len(names))
    for row, arm in enumerate(arms):
        _, score, missing = trial_scores(arm, chance)
        for spec in arm["space"]:
            ax = fig.add_subplot(grid[row, names.index(spec["name"])])
            draw_param_cell(ax, arm, spec, score, missing, colors[arm["arm"]], select)
    return fig


def tune_figures(tune: dict, summary: dict | None = None) -> dict[str, Figure]:
    """Figure objects keyed by file stem: tune_history, tune_final and (when an arm tuned
    anything) tune_params. summary: summarize_tune(tune), computed when not given."""
    tune = check_tune(tune)
    summary = summary if summary is not None else summarize_tune(tune)
    colors, facts = arm_colors(tune), two_lines(describe_tune(summary))
    figures = {"tune_history": history_figure(tune, colors, facts),
               "tune_final": final_figure(summary, colors),
               "tune_params": params_figure(tune, colors, facts)}
    return {name: fig for name, fig in figures.items() if fig is not None}


def plot_tune(tune: dict, folder: str | Path, fmt: str = "png") -> list[Path]:
    """Write every figure of tune_figures into `<folder>/plots/<name>.<fmt>` (folder: the
    tune folder); return the paths written. fmt: png, svg or pdf."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown figure format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    plots = Path(folder) / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in tune_figures(tune).items():
        paths.append(plots / f"{name}.{fmt}")
        save_figure(fig, paths[-1], fmt)
        fig.clear()
    return paths
