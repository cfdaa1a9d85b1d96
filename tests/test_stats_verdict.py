"""stats.py's functions for the tune verdict, on numbers checked by hand: iqm,
bootstrap_ci, probability_of_improvement, minimal_detectable_effect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossbench.results.stats import (
    bootstrap_ci,
    iqm,
    minimal_detectable_effect,
    probability_of_improvement,
)

NAN = float("nan")


# --- iqm -----------------------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    from scipy import stats  # slow to import: here, not when every worker collects

    assert iqm(np.arange(8)) == pytest.approx(np.mean([2, 3, 4, 5]))  # 2 cut from each end
    assert iqm([1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.5)  # 1 cut each end: mean of 2, 3
    assert iqm([5.0, 1.0, 3.0]) == pytest.approx(3.0)  # n = 3: nothing cut, the mean
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 6, 7, 9, 10, 31):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(stats.trim_mean(x, proportiontocut=0.25))


def test_iqm_edge_cases():
    assert math.isnan(iqm([]))
    assert math.isnan(iqm([NAN, float("inf")]))
    assert iqm([0, 1, 2, 3, 4, 5, 6, 7, NAN]) == pytest.approx(3.5)  # non-finite dropped
    assert iqm([[0, 1], [2, 3]]) == pytest.approx(1.5)  # flattened


# --- bootstrap_ci --------------------------------------------------------------------------


def test_bootstrap_ci_is_deterministic_and_contains_the_estimate():
    x = np.random.default_rng(1).normal(loc=3.0, scale=0.5, size=20)
    lo, hi = bootstrap_ci([x], iqm, seed=7)
    assert (lo, hi) == bootstrap_ci([x], iqm, seed=7)
    assert (lo, hi) != bootstrap_ci([x], iqm, seed=8)
    assert lo < iqm(x) < hi
    assert lo < 3.0 < hi  # covers the true centre for this well-behaved sample
    assert (lo, hi) == pytest.approx(bootstrap_ci([x], lambda v: iqm(v), seed=7))  # row by row
    lo90, hi90 = bootstrap_ci([x], iqm, confidence=0.9, seed=7)
    assert lo <= lo90 <= hi90 <= hi  # a lower confidence gives a narrower interval


def test_bootstrap_ci_of_the_mean_is_the_percentile_interval_by_hand():
    """With one stratum and the mean, the replicates are the means of n draws with
    replacement from default_rng(seed), the interval their 2.5 % and 97.5 % quantiles."""
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    rng = np.random.default_rng(3)
    means = x[rng.integers(0, 5, size=(500, 5))].mean(axis=1)
    expected = np.quantile(means, [0.025, 0.975])
    assert bootstrap_ci([x], np.mean, n_boot=500, seed=3) == pytest.approx(tuple(expected))


def test_bootstrap_ci_resamples_within_each_stratum():
    """Strata 0 (all zeros) and 100 (all hundreds): each replicate keeps two values from each
    stratum, so the mean of every replicate is 50 and the interval is exactly [50, 50]; an
    unstratified bootstrap of the four values would vary."""
    lo, hi = bootstrap_ci([[0.0, 0.0], [100.0, 100.0]], np.mean, n_boot=200)
    assert (lo, hi) == (50.0, 50.0)
    lo, hi = bootstrap_ci([[1.0, 3.0], [10.0, 30.0]], np.max, n_boot=200)
    assert lo >= 10.0 and hi == 30.0  # stratum 2 is always drawn from: max >= 10


def test_bootstrap_ci_edge_cases():
    assert all(math.isnan(v) for v in bootstrap_ci([[1.0]], iqm))
    assert all(math.isnan(v) for v in bootstrap_ci([[], []], iqm))
    assert all(math.isnan(v) for v in bootstrap_ci([[1.0, NAN]], iqm))
    assert bootstrap_ci([[2.0, 2.0, 2.0]], iqm) == (2.0, 2.0)
    assert not any(math.isnan(v) for v in bootstrap_ci([[1.0], [2.0]], np.mean))


# --- probability_of_improvement ------------------------------------------------------------


def test_probability_of_improvement_by_hand():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]
    better = probability_of_improvement(x, y, lower_is_better=True)
    assert better == {"p": 1.0, "lo": 1.0, "hi": 1.0, "n": 4}
    assert probability_of_improvement(x, y, lower_is_better=False)["p"] == 0.0
    # wins on seeds 0 and 1, ties on 2, loses on 3: (1 + 1 + 0.5 + 0) / 4
    out = probability_of_improvement([1.0, 1.0, 5.0, 9.0], [2.0, 2.0, 5.0, 3.0], True)
    assert out["p"] == pytest.approx(0.625) and out["n"] == 4
    assert 0.0 <= out["lo"] <= out["p"] <= out["hi"] <= 1.0


def test_probability_of_improvement_is_paired():
    """x = y + 0.01 seed by seed, y spread wide: unpaired, x and y look alike (about 0.5);
    paired, x is higher on every seed."""
    y = np.linspace(0.0, 10.0, 10)
    out = probability_of_improvement(y + 0.01, y, lower_is_better=False)
    assert out["p"] == 1.0 and out["lo"] == 1.0


def test_probability_of_improvement_interval_by_hand_and_edge_cases():
    x, y = np.array([1.0, 3.0, 2.0, 5.0, 4.0]), np.array([2.0, 2.0, 2.0, 6.0, 3.0])
    score = (x < y) + 0.5 * (x == y)
    idx = np.random.default_rng(5).integers(0, 5, size=(300, 5))
    expected = np.quantile(score[idx].mean(axis=1), [0.025, 0.975])
    out = probability_of_improvement(x, y, True, n_boot=300, seed=5)
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(expected))
    dropped = probability_of_improvement([1.0, NAN, 3.0], [2.0, 1.0, NAN], True)
    assert dropped["n"] == 1 and dropped["p"] == 1.0 and math.isnan(dropped["lo"])
    empty = probability_of_improvement([], [], True)
    assert empty["n"] == 0 and math.isnan(empty["p"]) and math.isnan(empty["hi"])


# --- minimal_detectable_effect -------------------------------------------------------------


def test_minimal_detectable_effect_formula():
    from scipy import stats  # slow to import: here, not when every worker collects

    t = stats.t
    expected = (t.ppf(0.975, 9) + t.ppf(0.8, 9)) * 2.0 / math.sqrt(10)
    assert minimal_detectable_effect(2.0, 10) == pytest.approx(expected)
    assert minimal_detectable_effect(2.0, 10, alpha=0.01, power=0.9) == pytest.approx(
        (t.ppf(0.995, 9) + t.ppf(0.9, 9)) * 2.0 / math.sqrt(10))
    assert minimal_detectable_effect(1.0, 6) == pytest.approx(1.4248, abs=1e-4)  # by table


def test_minimal_detectable_effect_shrinks_like_one_over_sqrt_n():
    """Quadrupling n halves the MDE, a little more for small n (the t quantiles fall too);
    for large n the ratio tends to 2 (normal quantiles, 1.96 + 0.84 = 2.80)."""
    for n in (10, 50, 400):
        ratio = minimal_detectable_effect(1.0, n) / minimal_detectable_effect(1.0, 4 * n)
        assert 2.0 <= ratio < 2.0 * 1.1
    assert minimal_detectable_effect(1.0, 10_000) * 100 == pytest.approx(2.80, abs=0.01)
    assert minimal_detectable_effect(3.0, 20) == pytest.approx(
        3 * minimal_detectable_effect(1.0, 20))


def test_minimal_detectable_effect_edge_cases():
    assert math.isnan(minimal_detectable_effect(1.0, 1))
    assert math.isnan(minimal_detectable_effect(1.0, 0))
    assert math.isnan(minimal_detectable_effect(NAN, 10))
    assert math.isnan(minimal_detectable_effect(float("inf"), 10))
    assert minimal_detectable_effect(0.0, 5) == 0.0
