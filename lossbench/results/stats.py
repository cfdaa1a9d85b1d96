"""Statistics over seeds: pure functions of NumPy arrays (rliable style). Each docstring
gives the array shape and the edge cases. `report` and `sweep` use these; nothing here reads
files or imports torch.

    mean_ci      mean and t-based confidence interval over seeds
    paired_test  paired t-test, and Wilcoxon signed-rank when n >= 6, on per-seed differences
    holm         Holm's step-down adjustment of p-values across strategies
    curve_band   mean and confidence band per epoch over seeds (what plot.py draws)
    iqm          interquartile mean: the mean of the middle 50 % of the values
    bootstrap_ci stratified bootstrap percentile interval of any statistic
    probability_of_improvement  paired P(x beats y) over seeds, with a bootstrap interval
    minimal_detectable_effect   smallest difference a paired t-test with n seeds detects
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
SAME_ATOL, SAME_RTOL = 1e-12, 1e-9
"""Differences closer than this (absolute, relative) are equal for `paired_test`: float
rounding, far below any metric's resolution."""


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
    same non-zero value -> t_p nan (zero variance: no t statistic), note says so. "0" and
    "the same" hold to float rounding (`SAME_ATOL`, `SAME_RTOL`): two equal differences of
    hit counts, k/n on two seeds, can differ in their last bits, and a t-test would read
    that rounding as a variance near 0 and give p ~ 1e-16."""
    d = np.asarray(diffs, dtype=float).ravel()
    d = d[np.isfinite(d)]
    n = len(d)
    out = {"n": n, "t_p": math.nan, "wilcoxon_p": math.nan, "note": ""}
    if n < 2:
        out["note"] = f"too few seeds for a test (n = {n}; need >= 2)"
        return out
    if np.all(np.abs(d) <= SAME_ATOL):
        out.update(t_p=1.0, wilcoxon_p=1.0 if n >= WILCOXON_MIN_N else math.nan,
                   note="identical on every seed")
        return out
    if np.allclose(d, d[0], rtol=SAME_RTOL, atol=SAME_ATOL):
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


def holm_across(entries: list[dict], metrics: list[str]) -> None:
    """Holm's adjustment (`holm`) of each entry's paired t-test and Wilcoxon p-values, per
    metric, across the entries (strategies compared with one baseline): adds t_p_holm and
    wilcoxon_p_holm next to t_p and wilcoxon_p in `entry["metrics"][metric]`."""
    for m in metrics:
        for key in ("t_p", "wilcoxon_p"):
            adjusted = holm([e["metrics"][m][key] for e in entries])
            for e, p in zip(entries, adjusted, strict=True):
                e["metrics"][m][f"{key}_holm"] = float(p)


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


def iqm(values: Any) -> float:
    """Interquartile mean (Agarwal et al., NeurIPS 2021; rliable's `aggregate_iqm`): the mean
    of the middle 50 % of the values, equal to scipy.stats.trim_mean(x, proportiontocut=0.25):
    the mean of the sorted x without its floor(0.25 n) lowest and floor(0.25 n) highest
    values. values: any shape, flattened. Example: iqm(0..7) = mean(2, 3, 4, 5) = 3.5.
    Non-finite entries are dropped first; no value left -> nan. With n < 4 nothing is cut:
    the plain mean."""
    x = np.asarray(values, dtype=float).ravel()
    x = np.sort(x[np.isfinite(x)])
    if len(x) == 0:
        return math.nan
    cut = int(0.25 * len(x))  # trim_mean's cut, in NumPy: scipy's call costs ~0.5 ms, and
    return float(x[cut:len(x) - cut].mean())  # bootstrap_ci makes thousands of them


def bootstrap_ci(samples: list[Any], statistic: Any = iqm, n_boot: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Stratified bootstrap percentile interval of statistic(concatenated samples), as
    rliable's StratifiedBootstrap: samples is one 1-D array per stratum (task), shape
    (n_k,); each of the n_boot replicates resamples every stratum with replacement on its
    own (n_k draws from stratum k), concatenates the strata and applies `statistic` (a
    function of a 1-D array to a float). (lo, hi) = the (1 - confidence) / 2 and
    (1 + confidence) / 2 quantiles of the n_boot replicates. One task is one stratum.
    Deterministic for a seed (numpy.random.default_rng(seed) draws an (n_boot, n_k) index
    matrix per stratum, in order). Non-finite entries are dropped first; fewer
    than 2 values in all -> (nan, nan). For iqm the replicates are computed all at once
    (the same numbers as row by row)."""
    strata = [np.asarray(s, dtype=float).ravel() for s in samples]
    strata = [s[np.isfinite(s)] for s in strata]
    strata = [s for s in strata if len(s)]
    if sum(len(s) for s in strata) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    replicates = np.concatenate([s[rng.integers(0, len(s), size=(n_boot, len(s)))]
                                 for s in strata], axis=1)  # (n_boot, n_values)
    if statistic is iqm:  # the same numbers, all rows at once
        cut = int(0.25 * replicates.shape[1])
        ordered = np.sort(replicates, axis=1)
        reps = ordered[:, cut:replicates.shape[1] - cut].mean(axis=1)
    else:
        reps = np.array([statistic(row) for row in replicates], dtype=float)
    lo, hi = np.quantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def probability_of_improvement(x: Any, y: Any, lower_is_better: bool, n_boot: int = 2000,
                               confidence: float = 0.95, seed: int = 0) -> dict:
    """Paired probability that x beats y. x, y: shape (n_seeds,), x[i] and y[i] from the same
    seed (data, initial weights, batch order); pairs with a non-finite entry are dropped and
    n counts the rest.

    p = (1 / n) sum_i (1[x_i beats y_i] + 0.5 * 1[x_i = y_i]), where beats is x_i < y_i when
    lower_is_better, else x_i > y_i. (lo, hi): percentile interval of p over n_boot
    resamples of the n pairs with replacement (numpy.random.default_rng(seed)). n = 0: p,
    lo, hi nan; n = 1: lo, hi nan. Unlike rliable's (unpaired, every run of x against
    every run of y), this compares each seed with its own partner only."""
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = len(a)
    out = {"p": math.nan, "lo": math.nan, "hi": math.nan, "n": int(n)}
    if n == 0:
        return out
    wins = (a < b) if lower_is_better else (a > b)
    score = wins + 0.5 * (a == b)
    out["p"] = float(score.mean())
    if n < 2:
        return out
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    lo, hi = np.quantile(score[idx].mean(axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    out.update(lo=float(lo), hi=float(hi))
    return out


def minimal_detectable_effect(sd: float, n: int, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test at level alpha detects
    with probability `power`, with n pairs whose differences have standard deviation sd:

        MDE = (t_{1 - alpha / 2, n - 1} + t_{power, n - 1}) * sd / sqrt(n)

    (t_{q, df}: the q quantile of Student's t with df degrees of freedom). It shrinks about
    like 1 / sqrt(n) (faster for small n, where the t quantiles fall too). n < 2 or sd not
    finite -> nan; sd = 0 -> 0."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    t = _scipy_stats().t
    return float((t.ppf(1 - alpha / 2, n - 1) + t.ppf(power, n - 1)) * sd / math.sqrt(n))
