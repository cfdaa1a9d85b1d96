"""Statistics over seeds: pure functions of NumPy arrays (rliable style). Each docstring
gives the array shape and the edge cases. `report` and `sweep` use these; nothing here reads
files or imports torch.

    mean_ci      mean and t-based confidence interval over seeds
    paired_test  paired t-test, and Wilcoxon signed-rank when n >= 6, on per-seed differences
    holm         Holm's step-down adjustment of p-values across strategies
    curve_band   mean and confidence band per epoch over seeds (what plot.py draws)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _scipy_stats():
    """scipy.stats, imported on first use: its import is slow, and every CLI start (and
    every worker process) would pay it even when no summary is printed."""
    from scipy import stats

    return stats

WILCOXON_MIN_N = 6
"""Below 6 seeds the exact two-sided Wilcoxon p-value cannot go below 2 / 2**5 = 0.0625."""


def mean_ci(values: Any, confidence: float = 0.95) -> dict:
    """Mean over seeds with a t-based confidence interval. values: shape (n_seeds,).

    mean = x_bar, half = t_{(1 + confidence) / 2, n - 1} * s / sqrt(n) with s the sample
    standard deviation (ddof = 1); lo, hi = mean -/+ half. Non-finite entries are dropped
    first and n counts the rest. n = 0: mean, lo, hi are nan. n = 1: lo = hi = nan (one
    seed says nothing about spread). All values equal (s = 0): lo = hi = mean."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    out = {"n": int(len(x)), "mean": math.nan, "lo": math.nan, "hi": math.nan}
    if len(x) == 0:
        return out
    out["mean"] = float(x.mean())
    if len(x) < 2:
        return out
    half = float(_scipy_stats().t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1)
                 / math.sqrt(len(x)))
    out.update(lo=out["mean"] - half, hi=out["mean"] + half)
    return out


def paired_test(diffs: Any) -> dict:
    """Tests of "no difference" on per-seed differences. diffs: shape (n_seeds,), diffs[i] =
    strategy - baseline at seed i (non-finite entries dropped).

    t_p: two-sided paired t-test, scipy.stats.ttest_1samp(diffs, 0) (= ttest_rel).
    wilcoxon_p: two-sided Wilcoxon signed-rank, scipy.stats.wilcoxon(diffs), when n >= 6;
    else nan. Edge cases: n < 2 -> both nan, note "too few seeds for a test"; every
    difference 0 -> both 1.0 (the strategies agree on every seed); every difference the
    same non-zero value -> t_p nan (zero variance: no t statistic), note says so."""
    d = np.asarray(diffs, dtype=float).ravel()
    d = d[np.isfinite(d)]
    n = len(d)
    out = {"n": n, "t_p": math.nan, "wilcoxon_p": math.nan, "note": ""}
    if n < 2:
        out["note"] = f"too few seeds for a test (n = {n}; need >= 2)"
        return out
    if np.all(d == 0):
        out.update(t_p=1.0, wilcoxon_p=1.0 if n >= WILCOXON_MIN_N else math.nan,
                   note="identical on every seed")
        return out
    if np.all(d == d[0]):
        out["note"] = "the same difference on every seed: zero variance, no t-test"
    else:
        out["t_p"] = float(_scipy_stats().ttest_1samp(d, 0.0).pvalue)
    if n >= WILCOXON_MIN_N:
        out["wilcoxon_p"] = float(_scipy_stats().wilcoxon(d).pvalue)
    return out


def holm(pvalues: Any) -> np.ndarray:
    """Holm's step-down adjustment. pvalues: shape (m,), one per strategy compared; nan
    entries (no test) stay nan and do not count in m. With p_(1) <= ... <= p_(m) sorted,
    adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j)); rejecting where adjusted
    <= a controls the family-wise error rate at a. Example: [0.01, 0.04, 0.03, 0.005]
    -> [0.03, 0.06, 0.06, 0.02]."""
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (len(order) - np.arange(len(order))) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def curve_band(curves: list[Any], confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Mean and t-based band per epoch over seeds. curves: one 1-D array per seed, entry
    e - 1 is epoch e; shorter curves (early stopping) count only where they have values.
    Returns arrays of shape (n_epochs,): epoch (1-based), mean, lo, hi, n (mean_ci per
    epoch; the band is nan where fewer than 2 seeds have a value)."""
    length = max((len(c) for c in curves), default=0)
    matrix = np.full((len(curves), length), math.nan)
    for i, c in enumerate(curves):
        matrix[i, :len(c)] = np.asarray(c, dtype=float)
    cols = [mean_ci(matrix[:, e], confidence) for e in range(length)]
    band = {k: np.array([c[k] for c in cols], dtype=float) for k in ("mean", "lo", "hi", "n")}
    return {"epoch": np.arange(1, length + 1), **band}
