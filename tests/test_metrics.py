"""Ranking metrics against scikit-learn, and the double-descent detector on made-up curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score, top_k_accuracy_score

from lossbench.curves import double_descent, moving_average
from lossbench.metrics import ranking_metrics, target_ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_match_sklearn_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    n, n_items = 200, 40
    scores = rng.normal(size=(n, n_items + 1))
    targets = rng.integers(1, n_items + 1, size=n)
    scores_t = torch.from_numpy(scores)
    scores_t[:, 0] = -np.inf  # padding is never ranked
    metrics = ranking_metrics(target_ranks(scores_t, torch.from_numpy(targets)))
    real = scores[:, 1:]
    labels = targets - 1
    assert metrics["acc"].mean().item() == pytest.approx(
        top_k_accuracy_score(labels, real, k=1, labels=np.arange(n_items)))
    assert metrics["hr10"].mean().item() == pytest.approx(
        top_k_accuracy_score(labels, real, k=10, labels=np.arange(n_items)))
    onehot = np.eye(n_items)[labels]
    assert metrics["ndcg10"].mean().item() == pytest.approx(ndcg_score(onehot, real, k=10))


def test_rank_by_hand():
    scores = torch.tensor([[-np.inf, 0.1, 0.9, 0.5], [-np.inf, 3.0, 2.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([3, 3]))
    assert ranks.tolist() == [1, 2]
    m = ranking_metrics(ranks)
    assert m["ndcg10"].tolist() == pytest.approx([1 / np.log2(3), 1 / np.log2(4)])
    assert m["mrr10"].tolist() == pytest.approx([0.5, 1 / 3])


def test_moving_average_uses_full_windows():
    assert moving_average(np.arange(7.0), 5).tolist() == [2.0, 3.0, 4.0]
    assert len(moving_average(np.arange(3.0), 5)) == 0


def curve(*pieces):
    return np.concatenate([np.linspace(a, b, n) for a, b, n in pieces])


def test_double_descent_found_with_the_numbers():
    values = curve((5.0, 4.0, 20), (4.0, 4.6, 30), (4.6, 4.2, 40))
    dd = double_descent(values)
    assert dd.found
    assert dd.m1 == pytest.approx(4.0, abs=0.05) and 18 <= dd.t1 <= 22
    assert dd.peak == pytest.approx(4.6, abs=0.05)
    assert dd.m2 == pytest.approx(4.2, abs=0.05)
    assert dd.recovered == pytest.approx(0.4 / 0.6, abs=0.05)


def test_plain_overfitting_is_not_double_descent():
    dd = double_descent(curve((5.0, 4.0, 20), (4.0, 6.0, 60)))
    assert not dd.found
    assert dd.m1 == pytest.approx(4.0, abs=0.05)


def test_monotone_descent_is_not_double_descent():
    assert not double_descent(curve((5.0, 3.0, 80))).found


def test_noise_only_wiggle_does_not_count():
    rng = np.random.default_rng(0)
    values = 4.0 + rng.normal(0, 0.03, size=150)  # flat curve, noise of about 0.75 %
    assert not double_descent(values).found


def test_small_rise_below_the_threshold_does_not_count():
    values = curve((5.0, 4.0, 20), (4.0, 4.08, 30), (4.08, 3.9, 40))  # a 2 % bump
    assert not double_descent(values).found
    assert double_descent(values, rise=1.01).found


def test_too_little_recovery_does_not_count():
    values = curve((5.0, 4.0, 20), (4.0, 5.0, 30), (5.0, 4.8, 40))  # wins back 20 %
    assert not double_descent(values).found
    assert double_descent(values, recover=0.15).found
