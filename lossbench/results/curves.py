"""Pure functions on one learning curve (a 1-D array over epochs): smoothing and the
double-descent test. No torch, no files: `report` and the tests call these directly."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def moving_average(values: np.ndarray, window: int = 5) -> np.ndarray:
    """Centred moving average over full windows only: output[i] is the mean of
    values[i : i + window], i.e. centred on epoch index i + window // 2. Length n - window + 1
    (empty when the curve is shorter than the window)."""
    values = np.asarray(values, dtype=float)
    if window <= 1:
        return values.copy()
    if len(values) < window:
        return np.empty(0)
    return np.convolve(values, np.ones(window) / window, mode="valid")


def noise_std(values: np.ndarray, window: int = 5) -> float:
    """The epoch-to-epoch noise of a curve: the standard deviation of the raw values around
    their centred moving average, std(values[i + window // 2] - moving_average[i]) over the
    full windows (nan with fewer than window + 1 epochs)."""
    values = np.asarray(values, dtype=float)
    s = moving_average(values, window)
    if len(s) < 2 or window <= 1:
        return float("nan")
    residual = values[window // 2: window // 2 + len(s)] - s
    return float(residual.std(ddof=1))


def overconfident_epochs(val_loss: np.ndarray, val_acc: np.ndarray, val_ndcg: np.ndarray,
                         window: int = 5) -> list[int]:
    """The seed's puzzle: epochs (1-based, the centre of the window) at which the moving
    average of the validation loss rises from the epoch before while the moving averages of
    validation accuracy and NDCG@10 rise too — the model gets more answers right but is
    more confidently wrong on the others."""
    loss, acc, ndcg = (np.diff(moving_average(v, window)) for v in (val_loss, val_acc, val_ndcg))
    rising = (loss > 0) & (acc > 0) & (ndcg > 0)
    offset = (window // 2 if window > 1 else 0) + 2  # diff j is epoch index j + 1 (+1 based)
    return [int(j) + offset for j in np.flatnonzero(rising)]


def spans(epochs: list[int]) -> list[tuple[int, int]]:
    """Consecutive epochs as (first, last) spans: [3, 4, 5, 9] -> [(3, 5), (9, 9)]."""
    out: list[tuple[int, int]] = []
    for e in epochs:
        if out and e == out[-1][1] + 1:
            out[-1] = (out[-1][0], e)
        else:
            out.append((e, e))
    return out


@dataclass(frozen=True)
class DoubleDescent:
    """Result of `double_descent`. Epochs are 1-based indices into the raw curve (the centre
    of the smoothing window); values are smoothed. `found` is False when no peak passes."""

    found: bool
    m1: float = float("nan")
    t1: int = 0
    peak: float = float("nan")
    t_peak: int = 0
    m2: float = float("nan")
    t2: int = 0
    recovered: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def double_descent(values: np.ndarray, window: int = 5, rise: float = 1.03,
                   recover: float = 0.3) -> DoubleDescent:
    """Does the curve descend, rise and descend again?

    On s = moving_average(values, window), for each candidate peak index p: m1 = min s[:p],
    m2 = min s[p+1:]. The peak qualifies when s[p] >= rise * m1 and
    m2 <= s[p] - recover * (s[p] - m1), i.e. at least `recover` of the rise is won back.
    Among qualifying peaks the one with the largest rise s[p] - m1 is reported, with
    recovered = (s[p] - m2) / (s[p] - m1). Without one, `found` is False and the other fields
    describe the largest rise (m2 may be nan when it is at the end)."""
    s = moving_average(values, window)
    offset = 1 + (window // 2 if window > 1 else 0)
    best: DoubleDescent | None = None
    fallback = DoubleDescent(found=False)
    for p in range(1, len(s) - 1):
        i1 = int(np.argmin(s[:p]))
        i2 = p + 1 + int(np.argmin(s[p + 1:]))
        m1, peak, m2 = s[i1], s[p], s[i2]
        if peak <= m1:
            continue
        frac = float((peak - m2) / (peak - m1))
        candidate = DoubleDescent(False, float(m1), i1 + offset, float(peak), p + offset,
                                  float(m2), i2 + offset, frac)
        if np.isnan(fallback.m1) or peak - m1 > fallback.peak - fallback.m1:
            fallback = candidate
        if peak >= rise * m1 and frac >= recover:
            if best is None or peak - m1 > best.peak - best.m1:
                best = DoubleDescent(True, *list(asdict(candidate).values())[1:])
    return best if best is not None else fallback
