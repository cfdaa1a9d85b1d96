"""Flooding, batch and per example: the formulas the `X-flood` and `X-iflood` modifiers apply.

Ishida et al., ICML 2020 (batch flooding: `|L - b| + b` on the total) and Xie et al., ICLR
2022 (iFlood: the mean over examples of `|l_i - b| + b`). objective.py applies them.
"""

from __future__ import annotations

from torch import Tensor

from lossbench.strategies.base import LossTerm


def flood(loss: Tensor, b: float) -> Tensor:
    """Flooding: L~ = |L - b| + b.

    Above the flood level b this is L (ordinary descent); below b it is 2b - L, so the
    gradient flips sign and the training loss is pushed back up towards b. With b = 0 and
    L >= 0 it is exactly L. Applied elementwise it floods each example (iFlood)."""
    return (loss - b).abs() + b


def flood_examples(term: LossTerm, b: float) -> LossTerm:
    """iFlood on one loss: every example's value is flooded, l~_i = |l_i - b| + b, and the
    batch mean is taken over the flooded values (Xie et al., 2022, eq. 3)."""
    flooded = flood(term.per_example, b)
    return LossTerm(flooded, flooded.mean())
