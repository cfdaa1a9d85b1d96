"""Figures of a results folder. Draws only what `report` returns: the groups and puzzle
spans of `report.summarize`, the per-epoch rows of `report.load_runs`, bands from
`stats.curve_band`, and `sweep.json` via `report.load_sweep` (drawn by plot_sweep.py).
Computes no statistic itself; it only compares runs for equality, to name a group that is
identical to another in the legend (`identical_groups`).

    runs = report.load_runs(results_dir)
    paths = plot_results(runs, report.summarize(runs), results_dir, fmt="png")

Figures (in <results_dir>/plots/): loss_curves (training and validation loss, the picture of
the double descent, with the puzzle epochs on a strip under the validation panel),
val_metrics, weights (the strategies' logged state over epochs: θ, DWA and uncertainty
weights, GCS/PCGrad cosines; only when some run has any), sweep (sweep folders: the metric
against the swept value, and for a flood level sweep the paired difference from the no-flood
baseline, seed by seed). A figure of one seed says "1 seed, no band".
Matplotlib's object API with the Agg canvas: no pyplot, no global figure state.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatter, MaxNLocator

from lossbench.errors import ConfigError
from lossbench.results.folders import COLUMNS
from lossbench.results.plot_sweep import BAND_ALPHA, sweep_figure
from lossbench.results.report import Run, load_sweep
from lossbench.results.stats import curve_band
from lossbench.results.tables import describe_settings

FORMATS = ("png", "svg", "pdf")
STATE_LABELS = {"theta": "θ, weight of L_aux (end of epoch)",
                "w_main": "weight of L_main", "w_aux": "weight of L_aux",
                "s_main": "log-variance s of L_main", "s_aux": "log-variance s of L_aux",
                "cos": "cos(∇L_main, ∇L_aux), epoch mean",
                "aux_used": "fraction of steps using ∇L_aux",
                "conflict": "fraction of conflicting steps"}
"""Axis labels of the built-in strategies' logged state; other columns show their name."""
VAL_METRICS = {"val_acc": "accuracy@1 (fraction)", "val_hr10": "HR@10 (fraction)",
               "val_ndcg10": "NDCG@10"}
"""Validation metrics drawn in val_metrics, with their axis labels."""
PUZZLE_ALPHA = 0.35
PUZZLE_STRIP = "puzzle strip"
"""Label (Axes.get_label) of the thin axes under the validation loss panel that holds the
puzzle spans."""


def group_colors(groups: list[dict]) -> dict[str, tuple]:
    """One colour per group label: tab10 for up to 10 groups, else spread over viridis."""
    n = len(groups)
    if n <= 10:
        return {g["label"]: colormaps["tab10"](i) for i, g in enumerate(groups)}
    return {g["label"]: colormaps["viridis"](i / (n - 1)) for i, g in enumerate(groups)}


def group_curves(group: dict, runs_by_name: dict[str, Run], column: str) -> list[np.ndarray]:
    """The column of metrics.csv for each (non-diverged) run of the group that has it: one
    per seed."""
    return [np.array([row[column] for row in runs_by_name[name].rows], dtype=float)
            for name in group["runs"]
            if name in runs_by_name and all(column in row for row in runs_by_name[name].rows)]


def line_width(index: int, n_groups: int) -> float:
    """Earlier groups are drawn wider, so a later group with an identical curve (flooding
    that never engages equals plain) shows as a thin line inside a wide one."""
    return 1.5 + 1.5 * (n_groups - 1 - index) / (n_groups - 1) if 1 < n_groups <= 6 else 1.6


def draw_band(ax: Axes, curves: list[np.ndarray], color: tuple, label: str,
              confidence: float, lw: float = 1.6) -> Line2D | None:
    """The mean over seeds as a solid line, the t-band shaded; returns the line."""
    if not curves or not any(len(c) for c in curves):
        return None
    band = curve_band(curves, confidence)
    (line,) = ax.plot(band["epoch"], band["mean"], color=color, lw=lw, label=label)
    ax.fill_between(band["epoch"], band["lo"], band["hi"], color=color, alpha=BAND_ALPHA,
                    lw=0)
    return line


def seed_columns(group: dict, runs: dict[str, Run]) -> dict[int, dict[str, np.ndarray]]:
    """{seed: {column: its values over epochs}} of the group's metrics.csv files, every
    column but `seconds` (wall time differs between otherwise identical runs)."""
    return {seed: {k: np.array([row[k] for row in runs[name].rows], dtype=float)
                   for k in (runs[name].rows[:1] or [{}])[0] if k != "seconds"}
            for name, seed in zip(group["runs"], group["seeds"], strict=True) if name in runs}


def identical_groups(groups: list[dict], runs: dict[str, Run]) -> dict[str, str]:
    """{label: label of the first earlier group it equals}, for each group whose runs equal
    that group's seed by seed: the same seeds, per seed the same metrics.csv columns and
    values at every epoch (nan equals nan; `seconds` aside), and the same summary values
    (`values`). A flooded group whose flooding never acted (flood_frac 0 at every epoch) is
    one: it equals its no-flood baseline number for number, so its curves hide under it."""
    tables = {g["label"]: seed_columns(g, runs) for g in groups}

    def same(a: dict, z: dict) -> bool:
        ca, cz = tables[a["label"]], tables[z["label"]]
        return (bool(ca) and ca.keys() == cz.keys() and a["values"] == z["values"]
                and all(ca[s].keys() == cz[s].keys()
                        and all(np.array_equal(ca[s][k], cz[s][k], equal_nan=True)
                                for k in ca[s]) for s in ca))

    found: dict[str, str] = {}
    for i, g in enumerate(groups):
        match = next((e for e in groups[:i] if e["label"] not in found and same(g, e)), None)
        if match is not None:
            found[g["label"]] = match["label"]
    return found


def legend_label(group: dict, same_as: str | None = None) -> str:
    """`flood b=0.1 (n=3)`, with the number of diverged seeds when there are any, and
    `flood b=8.5 (= plain; n=3)` when the group is identical to another (identical_groups)."""
    extra = f", {len(group['diverged_seeds'])} diverged" if group["diverged_seeds"] else ""
    same = f"= {same_as}; " if same_as else ""
    return f"{group['label']} ({same}n={len(group['seeds'])}{extra})"


def band_note(seed_counts: list[int], confidence: float) -> str:
    """What a figure's shading means, for its title: `mean over seeds, shaded 95%
    t-interval`; `1 seed, no band` when no group has 2 seeds (a t-interval needs 2); the
    first with `(none for 1-seed groups)` when only some lack it. seed_counts: one per group."""
    n = max(seed_counts, default=0)
    if n < 2:
        return f"{n} seed{'s' * (n != 1)}, no band"
    ci = f"mean over seeds, shaded {round(100 * confidence)}% t-interval"
    return ci + (" (none for 1-seed groups)" if min(seed_counts) < 2 else "")


def epoch_axis(ax: Axes) -> None:
    """Grid, `epoch` label and integer ticks on an axes whose x is the epoch."""
    ax.grid(alpha=0.3)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def new_figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    """A row of n_panels panels against epoch under a two-line title."""
    fig = Figure(figsize=(max(4.8 * n_panels, 7.0), 4.8), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, n_panels)))
    fig.suptitle(title, fontsize=11)
    for ax in axes:
        epoch_axis(ax)
    return fig, axes


def add_legend(fig: Figure, handles: list) -> None:
    """The legend below the axes, outside them, so it never covers a curve."""
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=9, frameon=False,
                   ncols=min(len(handles), 3))


def loss_axes(title: str, n_lanes: int) -> tuple[Figure, Axes, Axes, Axes | None]:
    """The training loss panel (left), the validation loss panel (right) and, when n_lanes
    > 0, a thin strip of n_lanes lanes under the validation panel, sharing its epochs
    (labelled PUZZLE_STRIP); else None for the strip."""
    if not n_lanes:
        fig, (train_ax, val_ax) = new_figure(2, title)
        return fig, train_ax, val_ax, None
    fig = Figure(figsize=(9.6, 4.8 + 0.15 * n_lanes), layout="constrained")
    fig.suptitle(title, fontsize=11)
    grid = fig.add_gridspec(2, 2, height_ratios=[1.0, 0.04 + 0.06 * n_lanes])
    train_ax, val_ax = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[0, 1])
    strip = fig.add_subplot(grid[1, 1], sharex=val_ax, label=PUZZLE_STRIP)
    for ax in (train_ax, val_ax, strip):
        epoch_axis(ax)
    val_ax.set_xlabel("")
    val_ax.tick_params(labelbottom=False)
    strip.set_yticks([])
    strip.set_ylabel("puzzle", rotation=0, fontsize=8, ha="right", va="center")
    return fig, train_ax, val_ax, strip


def loss_figure(groups: list[dict], runs: dict[str, Run], colors: dict, summary: dict,
                log_loss: bool, same: dict[str, str]) -> Figure:
    """Two panels: training loss (total before flooding, with b dashed) and validation
    loss, mean over seeds with the band, one colour per group; the puzzle epochs on a strip
    under the validation panel (puzzle_lanes), never over the curves. `same`: the
    groups identical to another (identical_groups), named so in the legend."""
    confidence = summary["options"]["confidence"]
    lanes = puzzle_lanes(groups, summary, same)
    fig, train_ax, val_ax, strip = loss_axes(
        f"Loss curves: {band_note([len(g['seeds']) for g in groups], confidence)}\n"
        f"{describe_settings(summary['settings'])}", len(lanes))
    handles: list = []
    for i, g in enumerate(groups):
        color, lw = colors[g["label"]], line_width(i, len(groups))
        draw_band(train_ax, group_curves(g, runs, "train_loss"), color, g["label"],
                  confidence, lw)
        line = draw_band(val_ax, group_curves(g, runs, "val_loss"), color,
                         legend_label(g, same.get(g["label"])), confidence, lw)
        if g["b"] > 0:
            train_ax.axhline(g["b"], color=color, ls="--", lw=1.2)
        if line is not None:
            handles.append(line)
    if any(g["b"] > 0 for g in groups):
        handles.append(Line2D([], [], color="grey", ls="--", lw=1.2, label="flood level b"))
    train_ax.set_title("training loss L_main + θ·L_aux (before flooding)", fontsize=10)
    train_ax.set_ylabel("loss (nats)")
    if strip is not None:
        draw_puzzle_strip(strip, lanes, colors)
        handles.append(Patch(color="grey", alpha=PUZZLE_ALPHA, label=(
            "puzzle: val loss ↑ while acc, NDCG ↑ (darker: more seeds)")))
    val_ax.set_title("validation loss", fontsize=10)
    val_ax.set_ylabel("cross-entropy (nats)")
    if log_loss:
        for ax in (train_ax, val_ax):
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.yaxis.set_major_formatter(LogFormatter())
            ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
    add_legend(fig, handles)
    return fig


def puzzle_lanes(groups: list[dict], summary: dict, same: dict[str, str]
                 ) -> dict[str, list[list]]:
    """{group label: the puzzle spans [[first, last], ...] of each of its runs that has
    any}, from report's `overconfidence` (validation loss rising while accuracy and
    NDCG@10 rise), in group order; groups identical to another (`same`) are left out, their
    spans being that group's."""
    lanes: dict[str, list[list]] = {g["label"]: [] for g in groups if g["label"] not in same}
    for entry in summary.get("overconfidence", []):
        if entry["label"] in lanes and entry["spans"]:
            lanes[entry["label"]].append(entry["spans"])
    return {label: spans for label, spans in lanes.items() if spans}


def draw_puzzle_strip(ax: Axes, lanes: dict[str, list[list]], colors: dict) -> None:
    """One lane per group, top to bottom in order; each run's span [first, last] is a bar
    from first - 0.5 to last + 0.5 in the group's colour, translucent, so that where
    seeds overlap the bar is darker."""
    n = len(lanes)
    for i, (label, per_run) in enumerate(lanes.items()):
        for spans in per_run:
            for first, last in spans:
                ax.axvspan(first - 0.5, last + 0.5, ymin=(n - i - 0.9) / n,
                           ymax=(n - i - 0.1) / n, color=colors[label], alpha=PUZZLE_ALPHA,
                           lw=0)


def has_values(groups: list[dict], runs: dict[str, Run], column: str) -> bool:
    return any(np.isfinite(c).any() for g in groups for c in group_curves(g, runs, column))


def metrics_figure(groups: list[dict], runs: dict[str, Run], colors: dict,
                   summary: dict, same: dict[str, str]) -> Figure | None:
    """One panel per validation metric that has values, against epoch."""
    columns = [c for c in VAL_METRICS if has_values(groups, runs, c)]
    if not columns:
        return None
    note = band_note([len(g["seeds"]) for g in groups], summary["options"]["confidence"])
    fig, axes = new_figure(len(columns), f"Validation metrics at each epoch: {note}\n"
                                         + describe_settings(summary["settings"]))
    handles = []
    for ax, column in zip(axes, columns, strict=True):
        for i, g in enumerate(groups):
            line = draw_band(ax, group_curves(g, runs, column), colors[g["label"]],
                             legend_label(g, same.get(g["label"])),
                             summary["options"]["confidence"],
                             line_width(i, len(groups)))
            if line is not None and column == columns[0]:
                handles.append(line)
        ax.set_title(column, fontsize=10)
        ax.set_ylabel(VAL_METRICS[column])
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 1.0))  # fractions: a t-band may overshoot [0, 1]
    add_legend(fig, handles)
    return fig


def state_columns(groups: list[dict], runs: dict[str, Run]) -> list[str]:
    """The strategy-state columns to draw: θ where some run's θ is not 1 (reweighting), then
    every column beyond the core metrics.csv columns (what strategies log), in order."""
    columns: dict[str, None] = {}
    for g in groups:
        for name in g["runs"]:
            rows = runs[name].rows if name in runs else []
            if any(row.get("theta", 1.0) != 1.0 for row in rows):
                columns["theta"] = None
            for row in rows[:1]:
                columns.update(dict.fromkeys(k for k in row if k not in COLUMNS))
    return list(columns)


def weights_figure(groups: list[dict], runs: dict[str, Run], colors: dict,
                   summary: dict, same: dict[str, str]) -> Figure | None:
    """One panel per state column (state_columns): its value at the end of each epoch (θ)
    or its epoch mean (cosines), mean over seeds with a band, for the groups that log it."""
    columns = state_columns(groups, runs)
    if not columns:
        return None
    note = band_note([len(g["seeds"]) for g in groups], summary["options"]["confidence"])
    fig, axes = new_figure(len(columns), "Strategy state over epochs (weights, θ, cosines): "
                           f"{note}\n{describe_settings(summary['settings'])}")
    handles: dict[str, Line2D] = {}
    for ax, column in zip(axes, columns, strict=True):
        for i, g in enumerate(groups):
            curves = [c for c in group_curves(g, runs, column) if len(c)]
            if column == "theta" and all((c == 1.0).all() for c in curves):
                continue  # θ is 1 for strategies that do not reweight
            line = draw_band(ax, curves, colors[g["label"]],
                             legend_label(g, same.get(g["label"])),
                             summary["options"]["confidence"], line_width(i, len(groups)))
            if line is not None:
                handles.setdefault(g["label"], line)
        ax.set_title(column, fontsize=10)
        ax.set_ylabel(STATE_LABELS.get(column, column))
    add_legend(fig, list(handles.values()))
    return fig


def make_figures(runs: list[Run], summary: dict, sweep: dict | None = None,
                 log_loss: bool = False) -> dict[str, Figure]:
    """Figure objects keyed by file stem: loss_curves, val_metrics, weights (when some
    strategy logged state) and sweep (when `sweep` has per_b entries). Groups come from
    summary["groups"], curves from the rows of the runs they name."""
    groups = summary["groups"]
    by_name = {r.dir.name: r for r in runs if r.summary is not None}
    colors, same = group_colors(groups), identical_groups(groups, by_name)
    figures = {"loss_curves": loss_figure(groups, by_name, colors, summary, log_loss, same),
               "val_metrics": metrics_figure(groups, by_name, colors, summary, same),
               "weights": weights_figure(groups, by_name, colors, summary, same),
               "sweep": sweep_figure(sweep, summary) if sweep else None}
    return {name: fig for name, fig in figures.items() if fig is not None}


def save_figure(fig: Figure, path: Path, fmt: str) -> None:
    """Save through a temporary file and an atomic rename, like every lossbench file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format=fmt, dpi=150)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plot_results(runs: list[Run], summary: dict, out_dir: str | Path, fmt: str = "png",
                 log_loss: bool = False) -> list[Path]:
    """Write every figure of make_figures into `<out_dir>/plots/<name>.<fmt>`, where
    out_dir is the results folder that was reported on (its sweep.json, if any, is read);
    return the paths written. fmt: png, svg or pdf."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown figure format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    figures = make_figures(runs, summary, load_sweep(out_dir), log_loss)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        paths.append(plots / f"{name}.{fmt}")
        save_figure(fig, paths[-1], fmt)
        fig.clear()
    return paths
