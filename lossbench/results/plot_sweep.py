"""The sweep figure of a sweep folder (plot.py draws the others and calls this one): the
selected validation metric and its test counterpart against the swept value, from
`sweep.json` (report.load_sweep), and for a flood level sweep the paired differences from
the no-flood baseline that `report.summarize` computed, seed by seed. Computes no statistic.

    fig = sweep_figure(report.load_sweep(folder), report.summarize(report.load_runs(folder)))
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lossbench.results.tables import describe_settings

BAND_ALPHA = 0.15
"""Opacity of every shaded interval, here and in plot.py."""
MIN_PAIRED_BAND = 3
"""The paired t-interval is shaded only with at least this many seeds: with 2, the t
quantile t_0.975,1 = 12.7 makes it far wider than the differences it is about."""


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


def sweep_seeds(sweep: dict, part: str, skip_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """(b, value) of every seed's run, from sweep.json's per-value [part]["per_seed"]; the
    b = 0 runs left out with skip_zero."""
    pairs = [(float(b), v) for b, entry in sweep_entries(sweep).items()
             if not (skip_zero and float(b) == 0)
             for v in (entry.get(part) or {}).get("per_seed") or [] if v is not None]
    return np.array([b for b, _ in pairs]), np.array([v for _, v in pairs], dtype=float)


def sweep_baseline(sweep: dict) -> str | None:
    """The no-flood baseline of a flood level sweep whose b = 0 runs are in sweep.json, as
    sweep.json names it ("b = 0" when it does not); None for any other sweep."""
    if sweep.get("param", "b") != "b" or not any(float(b) == 0 for b in sweep_entries(sweep)):
        return None
    return sweep.get("baseline") or "b = 0"


def paired_by_b(summary: dict, sweep: dict, metric: str) -> dict[float, dict]:
    """{b: report's paired entry for `metric`} (summary["paired"]: seeds, diffs = run at b
    minus the baseline's run of the same seed, mean, lo, hi, n) for every group at a b > 0
    of the sweep, of the swept strategy, whose baseline is the sweep's, at b = 0."""
    by_label = {g["label"]: g for g in summary.get("groups", [])}
    grid = {float(b) for b in sweep_entries(sweep)} - {0.0}
    out = {}
    for entry in summary.get("paired", []):
        g, base = by_label.get(entry["label"]), by_label.get(entry["baseline"])
        if (g is not None and base is not None and g["b"] in grid and base["b"] == 0
                and g["strategy"] == sweep.get("strategy", g["strategy"])
                and base["strategy"] == (sweep.get("baseline") or base["strategy"])):
            out[float(g["b"])] = entry["metrics"][metric]
    return out


def draw_sweep_panel(ax: Axes, sweep: dict, part: str, name: str, color: str,
                     baseline: str | None) -> None:
    """The metric's mean over seeds against the swept value. With a baseline: its mean
    as a horizontal line (not a point at b = 0) and each seed's value as a dot; without:
    sweep.json's interval shaded."""
    p = sweep_points(sweep, part)
    grid = p["b"] != 0 if baseline else np.ones(len(p["b"]), dtype=bool)
    ax.plot(p["b"][grid], p["mean"][grid], color=color, marker="o", lw=1.8,
            label=f"{name}: mean")
    if baseline is None:
        ax.fill_between(p["b"], p["lo"], p["hi"], color=color, alpha=BAND_ALPHA, lw=0)
        return
    selected = float(sweep.get("selected", sweep.get("selected_b", math.nan)))
    ax.axhline(float(p["mean"][~grid][0]), color="k", lw=1.4, label=(
        f"{baseline} (no flooding, b = 0): mean" + (", selected" if selected == 0 else "")))
    ax.plot(*sweep_seeds(sweep, part, skip_zero=True), ls="", marker=".", color=color,
            alpha=0.5, label="each seed")


def draw_paired_panel(ax: Axes, paired: dict[float, dict], color: str, baseline: str,
                      confidence: float) -> None:
    """report's paired differences from the baseline against b: one thin line per seed,
    the mean thick, its t-interval shaded where at least MIN_PAIRED_BAND seeds paired;
    0 (the baseline itself) as a black line."""
    ax.axhline(0.0, color="k", lw=1.4, label=f"0 = {baseline}, same seed")
    bs = sorted(paired)
    for i, seed in enumerate(sorted({s for d in paired.values() for s in d["seeds"]})):
        points = [(b, paired[b]["diffs"][paired[b]["seeds"].index(seed)]) for b in bs
                  if seed in paired[b]["seeds"]]
        ax.plot(*zip(*points, strict=True), color=color, lw=0.9, alpha=0.5, marker=".",
                label="each seed" if i == 0 else "_nolegend_")

    def get(key: str, least: int = 0) -> np.ndarray:
        return np.array([math.nan if paired[b][key] is None or paired[b]["n"] < least
                         else paired[b][key] for b in bs], dtype=float)

    ax.plot(bs, get("mean"), color=color, lw=2.0, marker="o", label="mean difference")
    lo, hi = get("lo", MIN_PAIRED_BAND), get("hi", MIN_PAIRED_BAND)
    if np.isfinite(lo).any():
        ax.fill_between(bs, lo, hi, color=color, alpha=BAND_ALPHA, lw=0,
                        label=f"paired {round(100 * confidence)}% t-interval")


def sweep_figure(sweep: dict, summary: dict) -> Figure | None:
    """The selected validation metric and the matching test metric against the swept value
    (b, or the parameter in sweep.json's `param`); the selected value as a dashed vertical
    line. A flood level sweep with its no-flood baseline (sweep_baseline) draws the
    baseline as a horizontal line, the axis spanning the grid only, and a second row with
    the paired difference from it, seed by seed (paired_by_b); other sweeps shade
    sweep.json's interval. None when sweep.json has no entries."""
    entries = sweep_entries(sweep)
    if not entries:
        return None
    param, baseline = sweep.get("param", "b"), sweep_baseline(sweep)
    selected = sweep.get("selected", sweep.get("selected_b"))
    first = next(iter(entries.values()), {}) or {}
    select = (first.get("val") or {}).get("metric") or sweep.get("select", "val_loss")
    test = (first.get("test") or {}).get("metric") or "test_" + select.removeprefix("val_")
    paired = {m: paired_by_b(summary, sweep, m) for m in (select, test)} if baseline else {}
    rows = 2 if any(paired.values()) else 1
    n_seeds = len(sweep.get("seeds") or [])
    note = ("1 seed, no band" if n_seeds == 1 else
            "mean over seeds (dots: each seed); below: paired difference, seed by seed"
            if rows == 2 else "mean over seeds, shaded interval from sweep.json")
    what = "Flood level sweep: b" if param == "b" else f"Parameter sweep: {param}"
    fig = Figure(figsize=(9.6, 4.2 * rows + 0.6), layout="constrained")
    fig.suptitle(f"{what} selected on {select} (validation only)\n"
                 f"{describe_settings(summary['settings'])}\n{note}", fontsize=11)
    axes = fig.subplots(rows, 2, sharex=True, squeeze=False)
    unit = " (nats)" if select.endswith("loss") else ""
    for col, (part, name, color) in enumerate(zip(("val", "test"), (select, test),
                                                  ("C0", "C3"), strict=True)):
        top = axes[0][col]
        draw_sweep_panel(top, sweep, part, name, color, baseline)
        top.set_ylabel(name + unit)
        top.set_title(("validation: " if part == "val" else "test (not used to select): ")
                      + name, fontsize=10)
        if rows == 2:
            bottom = axes[1][col]
            draw_paired_panel(bottom, paired[name], color, str(baseline),
                              summary["options"]["confidence"])
            bottom.set_ylabel(f"{name} − {baseline}{unit}")
            bottom.set_title(f"paired: run at b − {baseline}'s run of the same seed",
                             fontsize=10)
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
            if selected is not None and not (baseline and float(selected) == 0):
                ax.axvline(float(selected), color="k", ls="--", lw=1.2,
                           label=f"selected {param} = {float(selected):g}")
            ax.legend(fontsize=8, loc="best")
        axes[-1][col].set_xlabel("flood level b (nats)" if param == "b" else param)
    b = sweep_points(sweep, "val")["b"]
    b = b[b != 0] if baseline and (b != 0).any() else b  # the baseline is a line, not b = 0
    pad = 0.05 * (b.max() - b.min() or 1.0)
    axes[0][0].set_xlim(b.min() - pad, b.max() + pad)  # all panels: the grid, even where a
    return fig                                         # point is missing
