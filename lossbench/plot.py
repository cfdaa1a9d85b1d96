"""Figures of a results folder. Draws only what `report` returns: the groups of
`report.summarize`, the per-epoch rows of `report.load_runs`, bands from
`report.curve_band`, and `sweep.json` via `report.load_sweep`. Computes no statistic itself.

    runs = report.load_runs(results_dir)
    paths = plot_results(runs, report.summarize(runs), results_dir, fmt="png")

Figures (in <results_dir>/plots/): loss_curves (training and validation loss, the picture of
the double descent), val_metrics, weights (the strategies' logged state over epochs: θ, DWA
and uncertainty weights, GCS/PCGrad cosines; only when some run has any), sweep (sweep
folders).
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
from lossbench.recorder import COLUMNS
from lossbench.report import Run, curve_band, load_sweep
from lossbench.report_tables import describe_settings

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
BAND_ALPHA = 0.15


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


def legend_label(group: dict) -> str:
    """`flood b=0.1 (n=3)`, with the number of diverged seeds when there are any."""
    extra = f", {len(group['diverged_seeds'])} diverged" if group["diverged_seeds"] else ""
    return f"{group['label']} (n={len(group['seeds'])}{extra})"


def new_figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(max(4.8 * n_panels, 7.0), 4.8), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, n_panels)))
    fig.suptitle(title, fontsize=11)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes


def add_legend(fig: Figure, handles: list) -> None:
    """The legend below the axes, outside them, so it never covers a curve."""
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=9, frameon=False,
                   ncols=min(len(handles), 3))


def loss_figure(groups: list[dict], runs: dict[str, Run], colors: dict, summary: dict,
                log_loss: bool) -> Figure:
    """Two panels: training loss (total before flooding, with b dashed) and validation
    loss, mean over seeds with the band, one colour per group."""
    ci = round(100 * summary["options"]["confidence"])
    fig, (train_ax, val_ax) = new_figure(
        2, f"Loss curves: mean over seeds, shaded {ci}% t-interval\n"
           f"{describe_settings(summary['settings'])}")
    handles: list = []
    for i, g in enumerate(groups):
        color, lw = colors[g["label"]], line_width(i, len(groups))
        draw_band(train_ax, group_curves(g, runs, "train_loss"), color, g["label"],
                  summary["options"]["confidence"], lw)
        line = draw_band(val_ax, group_curves(g, runs, "val_loss"), color, legend_label(g),
                         summary["options"]["confidence"], lw)
        if g["b"] > 0:
            train_ax.axhline(g["b"], color=color, ls="--", lw=1.2)
        if line is not None:
            handles.append(line)
    if any(g["b"] > 0 for g in groups):
        handles.append(Line2D([], [], color="grey", ls="--", lw=1.2, label="flood level b"))
    train_ax.set_title("training loss L_main + θ·L_aux (before flooding)", fontsize=10)
    train_ax.set_ylabel("loss (nats)")
    if shade_overconfidence(val_ax, groups, colors, summary):
        handles.append(Patch(color="grey", alpha=0.25, label="val loss ↑ while acc, NDCG ↑ "
                             "(the seed's puzzle; darker = more seeds)"))
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


def shade_overconfidence(ax: Axes, groups: list[dict], colors: dict, summary: dict) -> bool:
    """Shade, in each group's colour, the epochs that report's `overconfidence` found per run
    (validation loss rising while accuracy and NDCG@10 rise); seeds overlap, so a darker band
    means more seeds. Returns whether anything was shaded."""
    labels = {g["label"] for g in groups}
    shaded = False
    for entry in summary.get("overconfidence", []):
        if entry["label"] not in labels:
            continue
        for first, last in entry["spans"]:
            ax.axvspan(first - 0.5, last + 0.5, color=colors[entry["label"]], alpha=0.08, lw=0)
            shaded = True
    return shaded


def has_values(groups: list[dict], runs: dict[str, Run], column: str) -> bool:
    return any(np.isfinite(c).any() for g in groups for c in group_curves(g, runs, column))


def metrics_figure(groups: list[dict], runs: dict[str, Run], colors: dict,
                   summary: dict) -> Figure | None:
    """One panel per validation metric that has values, against epoch."""
    columns = [c for c in VAL_METRICS if has_values(groups, runs, c)]
    if not columns:
        return None
    fig, axes = new_figure(len(columns), "Validation metrics at each epoch\n"
                                         + describe_settings(summary["settings"]))
    handles = []
    for ax, column in zip(axes, columns, strict=True):
        for i, g in enumerate(groups):
            line = draw_band(ax, group_curves(g, runs, column), colors[g["label"]],
                             legend_label(g), summary["options"]["confidence"],
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
                   summary: dict) -> Figure | None:
    """One panel per state column (state_columns): its value at the end of each epoch (θ)
    or its epoch mean (cosines), mean over seeds with a band, for the groups that log it."""
    columns = state_columns(groups, runs)
    if not columns:
        return None
    fig, axes = new_figure(len(columns), "Strategy state over epochs (weights, θ, cosines)\n"
                           + describe_settings(summary["settings"]))
    handles: dict[str, Line2D] = {}
    for ax, column in zip(axes, columns, strict=True):
        for i, g in enumerate(groups):
            curves = [c for c in group_curves(g, runs, column) if len(c)]
            if column == "theta" and all((c == 1.0).all() for c in curves):
                continue  # θ is 1 for strategies that do not reweight
            line = draw_band(ax, curves, colors[g["label"]], legend_label(g),
                             summary["options"]["confidence"], line_width(i, len(groups)))
            if line is not None:
                handles.setdefault(g["label"], line)
        ax.set_title(column, fontsize=10)
        ax.set_ylabel(STATE_LABELS.get(column, column))
    add_legend(fig, list(handles.values()))
    return fig


def sweep_entries(sweep: dict) -> dict:
    """sweep.json's per-value statistics: `per_value` (any parameter), or `per_b` (flood
    level sweeps, and sweeps written before `lossbench sweep` existed)."""
    entries = sweep.get("per_value", sweep.get("per_b"))
    return entries if isinstance(entries, dict) else {}


def sweep_points(sweep: dict, part: str) -> dict[str, np.ndarray]:
    """b, mean, lo, hi arrays (sorted by the swept value, under the key "b") of sweep.json's
    per-value statistics [value][part]; missing -> nan."""
    def get(entry: dict, key: str) -> float:
        value = (entry.get(part) or {}).get(key)
        return float("nan") if value is None else float(value)

    items = sorted((float(b), entry) for b, entry in sweep_entries(sweep).items())
    return {"b": np.array([b for b, _ in items]),
            **{k: np.array([get(e, k) for _, e in items]) for k in ("mean", "lo", "hi")}}


def sweep_figure(sweep: dict, summary: dict) -> Figure | None:
    """The selected validation metric and the matching test metric against the swept value
    (b, or the parameter in sweep.json's `param`), with bands;
    the selected value as a dashed vertical line. None when sweep.json has no entries."""
    entries = sweep_entries(sweep)
    if not entries:
        return None
    param = sweep.get("param", "b")
    selected = sweep.get("selected", sweep.get("selected_b"))
    first = next(iter(entries.values()), {}) or {}
    select = (first.get("val") or {}).get("metric") or sweep.get("select", "val_loss")
    test = (first.get("test") or {}).get("metric") or "test_" + select.removeprefix("val_")
    what = "Flood level sweep: b" if param == "b" else f"Parameter sweep: {param}"
    fig, axes = new_figure(2, f"{what} selected on {select} (validation only)\n"
                              f"{describe_settings(summary['settings'])} · mean over seeds, "
                              "shaded interval from sweep.json")
    unit = " (nats)" if select.endswith("loss") else ""
    for ax, part, name, color in zip(axes, ("val", "test"), (select, test), ("C0", "C3"),
                                     strict=True):
        p = sweep_points(sweep, part)
        ax.plot(p["b"], p["mean"], color=color, marker="o", lw=1.8, label=f"{name} mean")
        ax.fill_between(p["b"], p["lo"], p["hi"], color=color, alpha=BAND_ALPHA, lw=0)
        if selected is not None:
            ax.axvline(float(selected), color="k", ls="--", lw=1.2,
                       label=f"selected {param} = {float(selected):g}")
        ax.set_xlabel("flood level b (nats)" if param == "b" else param)
        ax.set_ylabel(name + unit)
        ax.set_title(("validation: " if part == "val" else "test (not used to select): ")
                     + name, fontsize=10)
        ax.legend(fontsize=9, loc="best")
    b = sweep_points(sweep, "val")["b"]
    pad = 0.05 * (b.max() - b.min() or 1.0)
    for ax in axes:  # the same b axis on both panels, even where a point is missing
        ax.set_xlim(b.min() - pad, b.max() + pad)
    return fig


def make_figures(runs: list[Run], summary: dict, sweep: dict | None = None,
                 log_loss: bool = False) -> dict[str, Figure]:
    """Figure objects keyed by file stem: loss_curves, val_metrics, weights (when some
    strategy logged state) and sweep (when `sweep` has per_b entries). Groups come from
    summary["groups"], curves from the rows of the runs they name."""
    groups = summary["groups"]
    by_name = {r.dir.name: r for r in runs if r.summary is not None}
    colors = group_colors(groups)
    figures = {"loss_curves": loss_figure(groups, by_name, colors, summary, log_loss),
               "val_metrics": metrics_figure(groups, by_name, colors, summary),
               "weights": weights_figure(groups, by_name, colors, summary),
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
