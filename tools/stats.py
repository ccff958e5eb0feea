"""Statistics used by the analyses: proportion tests, multiple testing, robust z, SRM, lift.

>>> round(float(two_proportion_p(50, 100, 70, 100)), 4)
0.0039
>>> bh([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
[0.04, 0.053, 0.053, 0.5]
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.special import ndtr


def two_proportion_z(x1: np.ndarray | float, n1: np.ndarray | float, x2: np.ndarray | float,
                     n2: np.ndarray | float) -> np.ndarray:
    """Pooled two-proportion z statistic of x1/n1 versus x2/n2 (0 where undefined)."""
    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (x1 + x2) / (n1 + n2)
        se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
        z = (x1 / n1 - x2 / n2) / se
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


MIN_EXPECTED = 5.0  # Cochran's rule: the normal approximation holds when every expected count is at least 5


def testable(x1, n1, x2, n2, min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """Can x1/n1 and x2/n2 be compared by the z-test? Every expected count of the 2x2 table under the
    pooled rate (successes and failures of each group) must be at least `min_expected`: the support a
    comparison needs follows from the data's own rates and volume, not from a fixed number of users.

    >>> testable([20, 1], [100, 8], [500, 500], [1000, 1000]).tolist()
    [True, False]
    """
    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.nan_to_num((x1 + x2) / (n1 + n2))
    return np.minimum.reduce([n1 * p, n1 * (1 - p), n2 * p, n2 * (1 - p)]) >= min_expected


def two_proportion_p(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p-value of the pooled two-proportion z-test."""
    return 2 * ndtr(-np.abs(two_proportion_z(x1, n1, x2, n2)))  # the normal tail, without scipy.stats' overhead


def bh(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def robust_z(values, window: int = 28) -> np.ndarray:
    """|x - median| / (1.4826 MAD) of each point against its trailing `window` points (NaN before)."""
    x = np.asarray(values, dtype=float)
    z = np.full(x.size, np.nan)
    for i in range(window, x.size):
        past = x[i - window:i]
        med = np.median(past)
        mad = 1.4826 * np.median(np.abs(past - med))
        z[i] = abs(x[i] - med) / mad if mad > 0 else (0.0 if x[i] == med else np.inf)
    return z


def srm_p(counts, weights=None) -> float:
    """Chi-square p-value of assigned counts against the intended split (equal by default)."""
    obs = np.asarray(counts, dtype=float)
    w = np.ones_like(obs) if weights is None else np.asarray(weights, dtype=float)
    expected = obs.sum() * w / w.sum()
    return float(stats.chisquare(obs, expected).pvalue)


def relative_lift(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[float, float, tuple[float, float]]:
    """Relative lift of B over A with delta-method variance: (lift, two-sided p, 95% CI)."""
    p_a, p_b = x_a / n_a, x_b / n_b
    if p_a == 0:
        return math.nan, math.nan, (math.nan, math.nan)
    lift = (p_b - p_a) / p_a
    var = p_b * (1 - p_b) / (p_a ** 2 * n_b) + p_a * (1 - p_a) * p_b ** 2 / (p_a ** 4 * n_a)
    se = math.sqrt(var)
    if se == 0:
        return lift, (1.0 if lift == 0 else 0.0), (lift, lift)
    p = float(2 * ndtr(-abs(lift / se)))
    return lift, p, (lift - 1.959964 * se, lift + 1.959964 * se)
