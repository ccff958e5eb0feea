"""When did a rate depart from its own baseline? A temporal scan statistic on a daily binomial series.

Kulldorff's scan statistic (Bernoulli model) in time: every window of at least MIN_DAYS whole days
that leaves at least MIN_BASELINE_DAYS outside is a candidate; its log-likelihood ratio compares "one
rate inside, another outside" with "one rate throughout", counting only windows where the rate moved
the harmful way. The likelihood ratio is scaled by the series' own overdispersion (the Pearson
chi-square of its days outside the window, per degree of freedom, at least 1), so day-to-day swings
a binomial model does not expect do not pass for incidents; the best window's p-value is the
chi-square(1) tail of the scaled statistic times the number of windows tried (Bonferroni). After an
incident is found, its days are set aside and the scan runs again, for a second incident.

>>> x = [80] * 20 + [30] * 10 + [80] * 10
>>> w = best_window(x, [100] * 40, worse="lower")
>>> (w.start, w.end, round(w.rate, 2), round(w.baseline, 2), w.p_value < 1e-10)
(20, 30, 0.3, 0.8, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import chdtrc, xlogy

MIN_DAYS = 2            # an incident lasts at least two whole days (one odd day is an anomaly, see trends)
MIN_BASELINE_DAYS = 7   # and leaves at least a week of the series outside it, to compare with


@dataclass(frozen=True)
class Window:
    """The most unusual window of a series: days [start, end), its rate against the rate outside it."""

    start: int
    end: int
    x: float
    n: float
    rate: float
    baseline: float
    statistic: float
    p_value: float
    dispersion: float
    windows: int


def _loglik(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Bernoulli log-likelihood of x successes in n at their own rate (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.where(n > 0, n, 1), 0.0)
    return xlogy(x, p) + xlogy(n - x, 1 - p)


def best_window(x, n, worse: Literal["lower", "higher"], masked=None) -> Window | None:
    """The window of days [start, end) whose rate departs most (the `worse` way) from the rest of the series.

    `masked` days (a found incident) count neither inside nor outside, and no window covers them.
    None when no window fits or none moved the harmful way.
    """
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    masked = np.zeros(x.size, bool) if masked is None else np.asarray(masked, bool)
    x, n = np.where(masked, 0.0, x), np.where(masked, 0.0, n)
    days = x.size
    cx, cn = np.concatenate([[0.0], np.cumsum(x)]), np.concatenate([[0.0], np.cumsum(n)])
    cm = np.concatenate([[0], np.cumsum(masked)])
    live_days = days - int(masked.sum())
    a, b = np.triu_indices(days + 1, k=MIN_DAYS)
    keep = (cm[b] - cm[a] == 0) & (live_days - (b - a) >= MIN_BASELINE_DAYS)
    a, b = a[keep], b[keep]
    if a.size == 0 or cn[-1] == 0:
        return None
    xi, ni = cx[b] - cx[a], cn[b] - cn[a]
    xo, no = cx[-1] - xi, cn[-1] - ni
    ok = (ni > 0) & (no > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi, po = xi / np.where(ni > 0, ni, 1), xo / np.where(no > 0, no, 1)
    harmful = (pi < po) if worse == "lower" else (pi > po)
    llr = _loglik(xi, ni) + _loglik(xo, no) - _loglik(np.array([cx[-1]]), np.array([cn[-1]]))
    llr = np.where(ok & harmful, llr, 0.0)
    best = int(np.argmax(llr))
    if llr[best] <= 0:
        return None
    start, end = int(a[best]), int(b[best])
    phi = dispersion(x, n, start, end, po[best], masked)
    statistic = 2 * llr[best] / phi
    p = min(1.0, float(chdtrc(1, statistic)) * a.size)  # the chi-square(1) tail, without scipy.stats' overhead
    return Window(start, end, float(xi[best]), float(ni[best]), float(pi[best]), float(po[best]), float(statistic), p,
                  phi, int(a.size))


def dispersion(x: np.ndarray, n: np.ndarray, start: int, end: int, baseline: float, masked: np.ndarray) -> float:
    """Pearson chi-square per degree of freedom of the days outside [start, end) around `baseline` (>= 1)."""
    outside = np.ones(x.size, bool)
    outside[start:end] = False
    outside &= ~masked & (n > 0)
    if outside.sum() < 2 or baseline <= 0 or baseline >= 1:
        return 1.0
    xo, no = x[outside], n[outside]
    chi2 = float(np.sum((xo - no * baseline) ** 2 / (no * baseline * (1 - baseline))))
    return max(1.0, chi2 / (outside.sum() - 1))
