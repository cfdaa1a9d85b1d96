"""Ranking metrics (against scikit-learn and brute force over tie orders), and the
double-descent detector on made-up curves."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from lossbench.results.curves import double_descent, moving_average
from lossbench.tasks import Split
from lossbench.training.metrics import evaluate, ranking_metrics, target_ranks

NAMES = ("acc", "hr10", "ndcg10", "mrr10")


def metrics_of(scores, targets, k=10):
    scores = torch.as_tensor(scores, dtype=torch.float64)
    return ranking_metrics(*target_ranks(scores, torch.as_tensor(targets)), k=k)


def padded(real):
    """Scores of real items [N, n] -> [N, n + 1] with the padding column 0 at -inf."""
    real = torch.as_tensor(real, dtype=torch.float64)
    return torch.cat([torch.full((len(real), 1), -math.inf, dtype=real.dtype), real], 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_match_sklearn_on_random_scores(seed):
    from sklearn.metrics import ndcg_score, top_k_accuracy_score  # ~2 s: only where it runs

    rng = np.random.default_rng(seed)
    n, n_items = 200, 40
    scores = rng.normal(size=(n, n_items + 1))
    targets = rng.integers(1, n_items + 1, size=n)
    scores_t = torch.from_numpy(scores)
    scores_t[:, 0] = -np.inf  # padding is never ranked
    metrics = ranking_metrics(*target_ranks(scores_t, torch.from_numpy(targets)))
    real = scores[:, 1:]
    labels = targets - 1
    assert metrics["acc"].mean().item() == pytest.approx(
        top_k_accuracy_score(labels, real, k=1, labels=np.arange(n_items)))
    assert metrics["hr10"].mean().item() == pytest.approx(
        top_k_accuracy_score(labels, real, k=10, labels=np.arange(n_items)))
    onehot = np.eye(n_items)[labels]
    assert metrics["ndcg10"].mean().item() == pytest.approx(ndcg_score(onehot, real, k=10))


@pytest.mark.parametrize("seed", [0, 1])
def test_ndcg_with_ties_matches_sklearns_tie_averaged_dcg(seed):
    from sklearn.metrics import ndcg_score

    # scikit-learn's ndcg_score (ignore_ties=False) averages the gain over tied groups, which
    # is the expected DCG under random tie-breaking: the same quantity as ours
    rng = np.random.default_rng(seed)
    n, n_items = 300, 30
    real = rng.integers(0, 4, size=(n, n_items)).astype(float)
    labels = rng.integers(0, n_items, size=n)
    metrics = metrics_of(padded(real), labels + 1)
    onehot = np.eye(n_items)[labels]
    assert metrics["ndcg10"].mean().item() == pytest.approx(ndcg_score(onehot, real, k=10))


def old_strict_rank_metrics(scores, targets, k=10):
    """The formula before ties were handled: rank = items scored strictly higher."""
    ranks = (scores > scores.gather(1, targets[:, None])).sum(1)
    hit = (ranks < k).float()
    return {"acc": (ranks == 0).float(), f"hr{k}": hit,
            f"ndcg{k}": hit / torch.log2(ranks.float() + 2.0),
            f"mrr{k}": hit / (ranks.float() + 1.0)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_without_ties_the_numbers_are_bit_identical_to_the_strict_rank(dtype):
    gen = torch.Generator().manual_seed(0)
    n, n_items = 500, 30  # small catalogue: many targets land in the top 10
    scores = torch.randn(n, n_items + 1, generator=gen, dtype=dtype)
    scores[:, 0] = -math.inf
    targets = torch.randint(1, n_items + 1, (n,), generator=gen)
    ranks = target_ranks(scores, targets)
    assert int(ranks.tied.sum()) == 0 and (ranks.above < 10).float().mean() > 0.2
    new, old = ranking_metrics(*ranks), old_strict_rank_metrics(scores, targets)
    for name in NAMES:
        assert new[name].dtype == torch.float32
        assert torch.equal(new[name], old[name]), name
    # with -inf items (exclude_seen) and a finite target nothing changes either
    seen = torch.randint(1, n_items + 1, (n, 5), generator=gen)
    seen = torch.where(seen == targets[:, None], 0, seen)
    excluded = scores.scatter(1, seen, -math.inf)
    new, old = ranking_metrics(*target_ranks(excluded, targets)), old_strict_rank_metrics(
        excluded, targets)
    for name in NAMES:
        assert torch.equal(new[name], old[name]), name


def test_rank_by_hand():
    scores = torch.tensor([[-np.inf, 0.1, 0.9, 0.5], [-np.inf, 3.0, 2.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([3, 3]))
    assert ranks.above.tolist() == [1, 2] and ranks.tied.tolist() == [0, 0]
    m = ranking_metrics(*ranks)
    assert m["ndcg10"].tolist() == pytest.approx([1 / np.log2(3), 1 / np.log2(4)])
    assert m["mrr10"].tolist() == pytest.approx([0.5, 1 / 3])


@pytest.mark.parametrize("n_items", [1, 7, 40, 1682])
def test_constant_scores_are_worth_what_a_random_order_is(n_items):
    scores = padded(torch.full((3, n_items), 0.25))
    m = metrics_of(scores, [1, n_items, (n_items + 1) // 2])
    positions = range(min(10, n_items))
    expected = {"acc": 1 / n_items, "hr10": min(10, n_items) / n_items,
                "ndcg10": sum(1 / math.log2(p + 2) for p in positions) / n_items,
                "mrr10": sum(1 / (p + 1) for p in positions) / n_items}
    for name in NAMES:
        assert m[name].tolist() == pytest.approx([expected[name]] * 3, rel=1e-6), name


def test_all_nan_scores_get_nothing():
    n_items = 50
    scores = padded(torch.full((4, n_items), math.nan))
    m = metrics_of(scores, [1, 2, 25, 50])
    for name in NAMES:
        assert m[name].tolist() == [0.0] * 4, name


def test_a_nan_target_ranks_last_and_nan_items_rank_below_a_finite_target():
    scores = padded(torch.randn(3, 20, dtype=torch.float64))
    scores[0, 5] = math.nan  # target 5 is NaN, the other items finite
    scores[1, 6:] = math.nan  # the other items NaN, target 3 finite ...
    scores[1, 3] = -100.0  # ... and below every finite item: 4 items above it
    scores[2, 1:] = math.nan
    scores[2, 2] = 0.0  # the only finite item
    ranks = target_ranks(scores, torch.tensor([5, 3, 1]))
    assert ranks.above.tolist() == [19, 4, 19] and ranks.tied.tolist() == [0, 0, 0]
    m = ranking_metrics(*ranks)
    assert m["hr10"].tolist() == [0.0, 1.0, 0.0]
    assert m["ndcg10"][1].item() == pytest.approx(1 / math.log2(6))
    for name in NAMES:
        assert m[name][0].item() == 0.0 and m[name][2].item() == 0.0, name


def test_ties_at_the_cut_off_by_hand():
    # 8 items strictly above the target, 4 others tied with it: positions 8..12, of which
    # 8 and 9 are in the top 10
    real = torch.cat([torch.full((8,), 2.0), torch.full((5,), 1.0), torch.zeros(7)])
    m = metrics_of(padded(real[None]), [10])  # item 10 is the second one scored 1.0
    assert m["hr10"].item() == pytest.approx(2 / 5)
    assert m["ndcg10"].item() == pytest.approx((1 / math.log2(10) + 1 / math.log2(11)) / 5)
    assert m["mrr10"].item() == pytest.approx((1 / 9 + 1 / 10) / 5)
    assert m["acc"].item() == 0.0


def test_minus_inf_items_are_not_ties_and_a_minus_inf_target_ties_with_them():
    # exclude_seen sets a history's items to -inf; the padding column is -inf too
    real = torch.tensor([[3.0, -math.inf, -math.inf, 1.0, -math.inf, 0.5]] * 2)
    ranks = target_ranks(padded(real), torch.tensor([4, 2]))
    # target 4 (score 1.0): item 1 above, no ties; target 2 (-inf): 3 finite items above,
    # tied with items 3 and 5, not with the padding column
    assert ranks.above.tolist() == [1, 3] and ranks.tied.tolist() == [0, 2]


def brute_force(real, target, k):
    """Mean metrics over every order of the real items (equal scores broken by the order);
    NaN below every other score, -inf included."""
    n = len(real)
    keys = [(0, 0.0) if math.isnan(x) else (1, x) for x in real]
    totals = dict.fromkeys(("acc", f"hr{k}", f"ndcg{k}", f"mrr{k}"), 0.0)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        tie_rank = {item: i for i, item in enumerate(order)}
        pos = sum(1 for j in range(n) if j != target
                  and (keys[j], -tie_rank[j]) > (keys[target], -tie_rank[target]))
        totals["acc"] += pos == 0
        totals[f"hr{k}"] += pos < k
        totals[f"ndcg{k}"] += (pos < k) / math.log2(pos + 2)
        totals[f"mrr{k}"] += (pos < k) / (pos + 1)
    return {name: total / len(orders) for name, total in totals.items()}


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_expected_values_equal_the_average_over_all_tie_orders(k):
    rng = np.random.default_rng(k)
    n_rows, n_items = 25, 6
    real = rng.integers(0, 3, size=(n_rows, n_items)).astype(float)  # many ties
    real[rng.random(real.shape) < 0.15] = -math.inf  # excluded items, some targets too
    targets = rng.integers(0, n_items, size=n_rows)
    nan = rng.random(real.shape) < 0.1
    nan[np.arange(n_rows), targets] = False  # NaN items, never a NaN target (ranked last)
    real[nan] = math.nan
    m = metrics_of(padded(real), targets + 1, k=k)
    for row in range(n_rows):
        expected = brute_force(real[row].tolist(), int(targets[row]), k)
        for name, value in expected.items():
            assert m[name][row].item() == pytest.approx(value, rel=1e-6), (row, name)


class ConstantModel(nn.Module):
    """Scores every item `value` (padding -inf), whatever the history."""

    def __init__(self, n_items, value):
        super().__init__()
        self.n_items, self.value = n_items, value

    def forward(self, inputs):
        return torch.zeros(*inputs.shape, 1)

    def logits(self, hidden):
        scores = torch.full((*hidden.shape[:-1], self.n_items + 1), self.value)
        scores[..., 0] = -math.inf
        return scores


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_evaluate_gives_a_collapsed_model_chance_level(exclude_seen):
    n_items, n_seen = 100, 4
    inputs = torch.arange(1, n_seen + 1).repeat(6, 1)  # items 1..4 seen, targets never seen
    split = Split(inputs, torch.tensor([5, 10, 50, 99, 100, 7]))
    result = evaluate(ConstantModel(n_items, 0.0), split, batch_size=4,
                      device=torch.device("cpu"), exclude_seen=exclude_seen)
    n = n_items - n_seen if exclude_seen else n_items
    assert result["hr10"] == pytest.approx(10 / n)
    assert result["acc"] == pytest.approx(1 / n)
    assert result["ndcg10"] == pytest.approx(sum(1 / math.log2(p + 2) for p in range(10)) / n)
    assert result["loss"] == pytest.approx(math.log(n_items))
    nan = evaluate(ConstantModel(n_items, math.nan), split, batch_size=4,
                   device=torch.device("cpu"), exclude_seen=exclude_seen)
    assert [nan[name] for name in NAMES] == [0.0] * 4


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
