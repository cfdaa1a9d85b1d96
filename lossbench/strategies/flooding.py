"""Flooding, batch and per example: the formulas the `X-flood`, `X-iflood` and `X-adaflood`
modifiers apply.

Ishida et al., ICML 2020 (batch flooding: `|L - b| + b` on the total), Xie et al., ICLR 2022
(iFlood: the mean over examples of `|l_i - b| + b`) and Bae et al., TMLR 2024 (AdaFlood: the
same with a level theta_i of each example's own, `adaflood_level`). objective.py applies them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.strategies.base import LossTerm


def flood(loss: Tensor, b: float | Tensor) -> Tensor:
    """Flooding: L~ = |L - b| + b.

    Above the flood level b this is L (ordinary descent); below b it is 2b - L, so the
    gradient flips sign and the training loss is pushed back up towards b. With b = 0 and
    L >= 0 it is exactly L. Applied elementwise it floods each example (iFlood), with a
    tensor b each at its own level (AdaFlood)."""
    return (loss - b).abs() + b


def flood_examples(term: LossTerm, b: float | Tensor) -> LossTerm:
    """iFlood on one loss: every example's value is flooded, l~_i = |l_i - b| + b, and the
    batch mean is taken over the flooded values (Xie et al., 2022, eq. 3). With a tensor b of
    the examples' shape, example i floods at b[i] (AdaFlood)."""
    flooded = flood(term.per_example, b)
    return LossTerm(flooded, flooded.mean())


def adaflood_level(heldout: Tensor, gamma: float) -> Tensor:
    """AdaFlood's flood level of each example (Bae et al., 2024, the corrected auxiliary
    loss; `AdaFloodCLSLoss` of the authors' code):

        theta_i = -log((1 - gamma) exp(-l_i) + gamma)

    `heldout` holds l_i, the example's cross-entropy under the auxiliary model that did not
    train on it, so exp(-l_i) is that model's probability of the example's label, mixed with
    the label itself (probability 1) at weight gamma: gamma = 0 gives theta_i = l_i, gamma = 1
    gives theta_i = 0 (no flooding), and theta_i <= min(l_i, -log gamma) in between, so a
    confidently wrong auxiliary model cannot set a level above -log gamma. Computed as
    -logaddexp(log(1 - gamma) - l_i, log gamma): exact at both ends, no overflow."""
    gamma_t = torch.tensor(float(gamma), dtype=heldout.dtype, device=heldout.device)
    return -torch.logaddexp(torch.log1p(-gamma_t) - heldout, torch.log(gamma_t))
