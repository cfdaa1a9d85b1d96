"""Full-ranking evaluation: every item is scored, no sampled negatives.

For each example, with s the target's score and the padding column 0 left out of every count:

    h = number of items scored strictly higher than the target,
    t = number of other items scored exactly as high as the target (ties).

Ties are broken uniformly at random, and we report the exact expected value: the target is
equally likely at each 0-based position p = h, h + 1, ..., h + t, and every metric is the mean
over those t + 1 positions of its value at p:

    acc     = [h = 0] / (t + 1)                        ([p = 0])
    HR@k    = clamp(k - h, 0, t + 1) / (t + 1)         ([p < k])
    NDCG@k  = (C[min(h + t + 1, k)] - C[min(h, k)]) / (t + 1),  C[j] = sum_{p<j} 1 / log2(p + 2)
    MRR@k   = (D[min(h + t + 1, k)] - D[min(h, k)]) / (t + 1),  D[j] = sum_{p<j} 1 / (p + 1)

(positions >= k contribute 0), each averaged over examples; `loss` is the mean cross-entropy of
the target (on all items, whatever `exclude_seen` says). Without ties (t = 0) this is the plain
rank p = h, and the numbers are computed by the direct formulas [p < k] / log2(p + 2) etc., bit
for bit as when ties were not handled. A model that scores every item alike (collapsed
weights) therefore gets HR@10 = 10 / n_items, not 1. RecBole orders tied scores in whatever
order `torch.topk` returns them (arbitrary, unspecified); ours is the expected value under
uniformly random tie-breaking, which does not depend on the order of the item ids.

Special scores:

- NaN ranks below every other score. An item scored NaN is never above nor tied with a non-NaN
  target. A NaN target ranks last, below every other item, NaN ones included (a NaN never wins
  a tie): h = n_items - 1, t = 0, so a model whose scores are NaN gets 0 on every metric
  (whenever n_items > k).
- -inf (items removed by `exclude_seen`) is an ordinary value below every finite one: it is
  never above nor tied with a finite target. A target scored -inf itself (a target that is
  also in its history, with `exclude_seen`) ranks below every finite item, as before, and
  ties with the other -inf items (the padding column 0 excepted); NaN items stay below it.
- The padding column 0 (score -inf) never counts as above or tied; targets are never 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.tasks import Split

METRIC_NAMES = ("loss", "acc", "hr10", "ndcg10", "mrr10")


class Ranks(NamedTuple):
    """Where the targets rank: `above` [N] items scored strictly higher (int64), `tied` [N]
    other items scored the same (int64); the target is at a position in above .. above + tied."""

    above: Tensor
    tied: Tensor


def target_ranks(scores: Tensor, targets: Tensor) -> Ranks:
    """scores [N, n_items + 1] (column 0 = padding, left out), targets [N] in 1..n_items ->
    Ranks(above, tied) of each target, with NaN below everything and a NaN target last (module
    docstring)."""
    target_score = scores.gather(1, targets[:, None])
    items = scores[:, 1:]
    above = (items > target_score).sum(1)
    tied = (items == target_score).sum(1) - 1  # the target equals itself (unless NaN)
    nan = target_score[:, 0].isnan()
    last = torch.full_like(above, items.shape[1] - 1)
    return Ranks(torch.where(nan, last, above), torch.where(nan, torch.zeros_like(tied), tied))


def ranking_metrics(above: Tensor, tied: Tensor | None = None, *, k: int = 10
                    ) -> dict[str, Tensor]:
    """Per-example acc, HR@k, NDCG@k, MRR@k (float32 tensors [N]): the expected values under
    random tie-breaking for a target with `above` [N] items strictly higher and `tied` [N]
    other items tied with it (None: no ties). Examples without ties get the direct formulas,
    bit for bit."""
    rank = above.float()
    hit = (above < k).float()
    metrics = {"acc": (above == 0).float(), f"hr{k}": hit,
               f"ndcg{k}": hit / torch.log2(rank + 2.0), f"mrr{k}": hit / (rank + 1.0)}
    if tied is None:
        return metrics
    n = (tied + 1).double()
    lo = above.clamp(max=k)
    hi = (above + tied + 1).clamp(max=k)
    positions = torch.arange(k, dtype=torch.float64, device=above.device)
    zero = positions.new_zeros(1)
    gain = {f"ndcg{k}": 1.0 / torch.log2(positions + 2.0), f"mrr{k}": 1.0 / (positions + 1.0)}
    expected = {"acc": (above == 0).double() / n, f"hr{k}": (hi - lo).double() / n}
    for name, values in gain.items():
        table = torch.cat([zero, values.cumsum(0)])
        expected[name] = (table[hi] - table[lo]) / n
    no_tie = tied == 0
    return {name: torch.where(no_tie, values, expected[name].float())
            for name, values in metrics.items()}


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, *, batch_size: int, device: torch.device,
             exclude_seen: bool = False) -> dict[str, float]:
    """Mean loss, acc, hr10, ndcg10, mrr10 of `model` on an evaluation split (inputs [M, T],
    targets [M]), in batches of `batch_size`. With `exclude_seen` the items of a history are
    removed from its ranking (scored -inf). Ties count at their expected value (module
    docstring)."""
    was_training = model.training
    model.eval()
    sums = dict.fromkeys(METRIC_NAMES, 0.0)
    for start in range(0, len(split), batch_size):
        inputs = split.inputs[start:start + batch_size].to(device, non_blocking=True)
        targets = split.targets[start:start + batch_size].to(device, non_blocking=True)
        scores = model.logits(model(inputs)[:, -1]).float()
        sums["loss"] += float(F.cross_entropy(scores, targets, reduction="sum"))
        if exclude_seen:
            scores = scores.scatter(1, inputs, -math.inf)
        for name, values in ranking_metrics(*target_ranks(scores, targets)).items():
            sums[name] += float(values.sum())
    model.train(was_training)
    return {name: total / len(split) for name, total in sums.items()}


def chance_level(metric: str, n_items: int) -> float:
    """What a model that scores every item alike gets (uniform random ranking of n items, the
    expected values above with h = 0, t = n - 1), for `metric` with or without its split
    prefix (`val_`, `test_`): loss = ln n, acc = 1 / n, HR@10 = min(10, n) / n,
    NDCG@10 = C[min(10, n)] / n, MRR@10 = D[min(10, n)] / n. `lossbench tune` scores a run
    that diverged with this (a failed run counts as a model that learned nothing)."""
    name = metric.split("_", 1)[1] if metric.startswith(("val_", "test_")) else metric
    k = min(10, n_items)
    values = {"loss": math.log(n_items), "acc": 1.0 / n_items, "hr10": k / n_items,
              "ndcg10": sum(1.0 / math.log2(p + 2) for p in range(k)) / n_items,
              "mrr10": sum(1.0 / (p + 1) for p in range(k)) / n_items}
    if name not in values:
        raise ValueError(f"no chance level for metric '{metric}'")
    return values[name]
