"""The two losses of a run, returned separately and never summed here.

    losses = compute_losses(model, inputs, targets, cfg.losses, epoch, generator)
    losses.main.per_example   # L_main per training target [N]: next-item cross-entropy
    losses.main.mean          # its batch mean, L_main
    losses.aux.per_example    # L_aux per contrastive anchor [M] (empty with --aux none)
    losses.aux.mean           # L_aux (0 with --aux none)

`lossbench/strategies/` is the only place where the two become one objective.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.config import LossesConfig
from lossbench.strategies.base import LossTerm


class Losses(NamedTuple):
    """L_main and L_aux of one batch."""

    main: LossTerm
    aux: LossTerm


def next_item_ce(logits: Tensor, targets: Tensor, smoothing: float = 0.0) -> LossTerm:
    """L_main: per example the cross-entropy of the target, and the mean over examples;
    logits [N, n_items + 1] (padding column -inf), targets [N] in 1..n_items.

    With label smoothing eps (Szegedy et al., 2016) the target distribution is 1 - eps on the
    target plus eps spread evenly over the n_items real items (the padding column gets none):

        per_example = (1 - eps) * -log p[target] + eps * mean_{i=1..n_items} -log p[i]

    computed as `F.cross_entropy(logits[:, 1:], targets - 1, label_smoothing=eps)`. With eps = 0
    the mean is `F.nll_loss` of the log-softmax, i.e. exactly `F.cross_entropy(logits,
    targets)`."""
    if smoothing > 0.0:
        per_example = F.cross_entropy(logits[:, 1:], targets - 1, reduction="none",
                                      label_smoothing=smoothing)
        return LossTerm(per_example, per_example.mean())
    log_probs = F.log_softmax(logits, dim=1)
    per_example = -log_probs.gather(1, targets[:, None]).squeeze(1)
    return LossTerm(per_example, F.nll_loss(log_probs, targets))


def supcon_temperature(epoch: int, cfg: LossesConfig) -> float:
    """Curriculum on the temperature, easy to hard: tau falls linearly from `aux_tau_start`
    at epoch 1 to `aux_tau_end` at epoch 1 + `aux_warmup`, and stays there.

    A high tau gives soft similarity weights (every negative counts a little: easy); a low tau
    concentrates the loss on the hardest negatives (hard)."""
    progress = 1.0 if cfg.aux_warmup == 0 else min(1.0, (epoch - 1) / cfg.aux_warmup)
    return cfg.aux_tau_start + (cfg.aux_tau_end - cfg.aux_tau_start) * progress


def aux_tau(epoch: int, cfg: LossesConfig) -> float:
    """metrics.csv's `aux_tau`: the SupCon temperature of `epoch`, 0 without L_aux."""
    return supcon_temperature(epoch, cfg) if cfg.aux != "none" else 0.0


def supcon(z: Tensor, labels: Tensor, tau: float) -> LossTerm:
    """Supervised contrastive loss (Khosla et al., 2020, L_out), z [N, H], labels [N]:

        L = mean_{i with P(i) non-empty} -1/|P(i)| sum_{p in P(i)}
                log( exp(s_ip / tau) / sum_{a != i} exp(s_ia / tau) ),

    s = cosine similarity, P(i) = {p != i : labels[p] == labels[i]}. Anchors without positives
    are left out; with none at all the loss is 0 (still attached to the graph) and there are
    no per-anchor values."""
    z = F.normalize(z, dim=1)
    n = z.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T / tau).masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return LossTerm(z[:0, 0], z.sum() * 0.0)
    pos_log_prob = log_prob.masked_fill(~positive, 0.0).sum(1)
    per_anchor = -(pos_log_prob[has_pos] / n_pos[has_pos])
    return LossTerm(per_anchor, per_anchor.mean())


def mask_items(inputs: Tensor, prob: float, generator: torch.Generator) -> Tensor:
    """An augmented view: each history item becomes padding (0) with probability `prob`.
    The random draw uses `generator` on the CPU, so it is the same on every device."""
    drop = torch.rand(inputs.shape, generator=generator) < prob
    return inputs.masked_fill(drop.to(inputs.device), 0)


def compute_losses(model: nn.Module, inputs: Tensor, targets: Tensor, cfg: LossesConfig,
                   epoch: int, generator: torch.Generator) -> Losses:
    """Both losses for one batch. inputs [B, T] histories, targets [B, T] (0 = no target).

    L_aux contrasts sequence representations (the hidden state at the last position): view 1
    is the unaugmented history (the one L_main uses), view 2 a `mask_items` copy. Positives of
    an anchor: its other view and every view of a sequence with the same last target item
    (the training label, noisy where the task is)."""
    hidden = model(inputs)
    has_target = targets > 0
    main = next_item_ce(model.logits(hidden[has_target]), targets[has_target],
                        cfg.label_smoothing)
    if cfg.aux == "none":
        zero = torch.zeros((), device=hidden.device)
        return Losses(main, LossTerm(zero.new_zeros(0), zero))
    view = mask_items(inputs, cfg.aux_mask_prob, generator)
    z = torch.cat([hidden[:, -1], model(view)[:, -1]])
    labels = targets[:, -1].repeat(2)
    return Losses(main, supcon(z, labels, supcon_temperature(epoch, cfg)))
