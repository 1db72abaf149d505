"""Confidence intervals for error rates measured as k errors out of n trials.

Clopper-Pearson (exact, conservative) is the default used in reports; Wilson is offered for
comparison. Pure numpy: the binomial tails are summed in log space and inverted by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument

Interval = tuple[float, float]


def _check(k: int, n: int, confidence: float) -> None:
    if n < 0 or k < 0 or k > n:
        raise InvalidArgument(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise InvalidArgument(f"confidence must be in (0, 1), got {confidence}")


def _log_binom_coefficients(n: int, upto: int) -> npt.NDArray[np.float64]:
    """log C(n, i) for i = 0..upto, built by the recurrence C(n,i) = C(n,i-1)(n-i+1)/i."""
    i = np.arange(1, upto + 1, dtype=np.float64)
    steps = np.log(n - i + 1.0) - np.log(i)
    return np.concatenate(([0.0], np.cumsum(steps)))


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summing the shorter tail in log space."""
    if k >= n:
        return 1.0
    if k < 0:
        return 0.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    if k <= n - k - 1:
        i = np.arange(0, k + 1, dtype=np.float64)
        terms = _log_binom_coefficients(n, k) + i * lp + (n - i) * lq
        return float(min(1.0, np.exp(np.logaddexp.reduce(terms))))
    # upper tail P(X >= k+1) = P(Y <= n-k-1) with Y ~ Binomial(n, 1-p)
    m = n - k - 1
    j = np.arange(0, m + 1, dtype=np.float64)
    terms = _log_binom_coefficients(n, m) + j * lq + (n - j) * lp
    return float(max(0.0, 1.0 - np.exp(np.logaddexp.reduce(terms))))


def _bisect(f: Callable[[float], float], target: float, increasing: bool) -> float:
    """Solve f(p) = target on (0, 1) for a monotone f."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        value = f(mid)
        if (value < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Exact two-sided interval for a binomial proportion k/n.

    ``n == 0`` carries no information and gives ``(0.0, 1.0)``. ``k == 0`` gives a lower
    bound of 0 and an upper bound of ``1 - (alpha/2)**(1/n)``.
    """
    _check(k, n, confidence)
    if n == 0:
        return (0.0, 1.0)
    half = (1.0 - confidence) / 2
    if k == 0:
        lower = 0.0
    elif k == n:
        lower = half ** (1.0 / n)
    else:
        # P(X >= k | p) = half, increasing in p
        lower = _bisect(lambda p: 1.0 - _binom_cdf(k - 1, n, p), half, increasing=True)
    if k == n:
        upper = 1.0
    elif k == 0:
        upper = 1.0 - half ** (1.0 / n)
    else:
        # P(X <= k | p) = half, decreasing in p
        upper = _bisect(lambda p: _binom_cdf(k, n, p), half, increasing=False)
    return (lower, upper)


def _normal_quantile(q: float) -> float:
    """Inverse standard normal CDF by bisection on erf (accurate to ~1e-12)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def wilson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for k/n; ``n == 0`` gives ``(0.0, 1.0)``."""
    _check(k, n, confidence)
    if n == 0:
        return (0.0, 1.0)
    z = _normal_quantile(1.0 - (1.0 - confidence) / 2)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lower = 0.0 if k == 0 else max(0.0, centre - half)
    upper = 1.0 if k == n else min(1.0, centre + half)
    return (lower, upper)
