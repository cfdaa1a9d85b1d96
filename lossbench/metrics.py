"""Full-ranking evaluation: every item is scored, no sampled negatives.

rank = number of items scored strictly higher than the target (0 = top). Then
acc = [rank = 0], HR@10 = [rank < 10], NDCG@10 = [rank < 10] / log2(rank + 2),
MRR@10 = [rank < 10] / (rank + 1), each averaged over examples; `loss` is the mean
cross-entropy of the target (on all items, whatever `exclude_seen` says).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.tasks import Split

METRIC_NAMES = ("loss", "acc", "hr10", "ndcg10", "mrr10")


def target_ranks(scores: Tensor, targets: Tensor) -> Tensor:
    """scores [N, n_items + 1], targets [N] -> 0-based rank of each target [N]."""
    target_score = scores.gather(1, targets[:, None])
    return (scores > target_score).sum(1)


def ranking_metrics(ranks: Tensor, k: int = 10) -> dict[str, Tensor]:
    """Per-example acc, HR@k, NDCG@k, MRR@k (float tensors [N]) from 0-based ranks [N]."""
    hit = (ranks < k).float()
    return {"acc": (ranks == 0).float(), f"hr{k}": hit,
            f"ndcg{k}": hit / torch.log2(ranks.float() + 2.0),
            f"mrr{k}": hit / (ranks.float() + 1.0)}


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, *, batch_size: int, device: torch.device,
             exclude_seen: bool = False) -> dict[str, float]:
    """Mean loss, acc, hr10, ndcg10, mrr10 of `model` on an evaluation split (inputs [M, T],
    targets [M]), in batches of `batch_size`. With `exclude_seen` the items of a history are
    removed from its ranking."""
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
        for name, values in ranking_metrics(target_ranks(scores, targets)).items():
            sums[name] += float(values.sum())
    model.train(was_training)
    return {name: total / len(split) for name, total in sums.items()}
