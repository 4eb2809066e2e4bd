"""Goodness-of-fit statistics for certification: pooled chi-square and G tests, Holm's correction,
and the smallest deviation a test detects at its sample size.

Everything is computed from torch's regularised incomplete gamma functions (float64), so
certification needs no scipy (tests check these against scipy).

Detectable deviation. Pearson's statistic on n samples from Q, tested against P over k bins, is
asymptotically noncentral chi-square with k - 1 degrees of freedom and noncentrality
n * chi2(Q || P); the G statistic's is 2n * KL(Q || P). Both divergences are at least 4 TV(Q, P)^2
(Cauchy-Schwarz; Pinsker), so any Q whose total variation distance from P over the bins is delta
has noncentrality >= 4 n delta^2. The smallest delta whose worst case still reaches the
noncentrality lambda* at which the test rejects at level alpha with probability `power` is
sqrt(lambda* / (4 n)); pooled bins hide deviations inside them, at most their probability mass,
which is added.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import attrs
import numpy as np
import torch

from ..core.errors import ConfigError

MIN_EXPECTED = 5.0  # bins expected to hold fewer samples are pooled


def _f64(x: float) -> torch.Tensor:
    return torch.tensor(float(x), dtype=torch.float64)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X chi-square with `df` degrees of freedom (1.0 for df 0)."""
    if df <= 0:
        return 1.0
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return float(torch.special.gammaincc(_f64(df / 2), _f64(x / 2)))


def chi2_isf(alpha: float, df: int) -> float:
    """The x with chi2_sf(x, df) = alpha (the test's critical value)."""
    lo, hi = 0.0, float(df) + 10.0
    while chi2_sf(hi, df) > alpha:
        hi *= 2
    while hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chi2_sf(mid, df) > alpha else (lo, mid)
    return hi


def noncentral_chi2_sf(x: float, df: int, noncentrality: float) -> float:
    """P(X > x) for X noncentral chi-square: the Poisson(noncentrality / 2) mixture of chi-squares
    with df + 2j degrees of freedom."""
    half = noncentrality / 2
    terms = int(half + 12 * math.sqrt(half) + 40)
    j = torch.arange(terms, dtype=torch.float64)
    weights = torch.exp(-half + j * math.log(half) - torch.lgamma(j + 1)) if half > 0 else (j == 0).double()
    tails = torch.special.gammaincc(df / 2 + j, _f64(x / 2).expand(terms))
    return float((weights * tails).sum())


@functools.lru_cache(maxsize=1024)
def noncentrality_for_power(df: int, alpha: float, power: float) -> float:
    """The noncentrality at which a chi-square test with `df` degrees of freedom, rejecting at
    level `alpha`, rejects with probability `power`."""
    critical = chi2_isf(alpha, df)
    lo, hi = 0.0, 10.0
    while noncentral_chi2_sf(critical, df, hi) < power:
        hi *= 2
    while hi - lo > 1e-6 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if noncentral_chi2_sf(critical, df, mid) < power else (lo, mid)
    return hi


def detectable_tv(samples: int, df: int, alpha: float, power: float = 0.9, pooled_mass: float = 0.0) -> float | None:
    """The smallest total variation distance that a test of `samples` samples over df + 1 bins
    detects at level `alpha` with probability >= `power`, whatever the deviation's shape
    (asymptotically; see the module docstring). None when df is 0 (nothing to compare)."""
    if df <= 0 or samples <= 0:
        return None
    delta = math.sqrt(noncentrality_for_power(df, alpha, power) / (4 * samples))
    return min(1.0, delta + pooled_mass)


@attrs.frozen
class Fit:
    """A chi-square and a G test of observed counts against exact probabilities, bins pooled."""

    samples: int  # observations (for a combined fit: of its smallest part)
    chi2: float
    g: float
    df: int
    pooled_mass: float  # probability in the pooled bin (for a combined fit: the largest)
    #: observations of outcomes of probability 0: any one rejects, whatever the statistics say
    impossible: int

    @property
    def p_chi2(self) -> float:
        return 0.0 if self.impossible else chi2_sf(self.chi2, self.df)

    @property
    def p_g(self) -> float:
        return 0.0 if self.impossible else chi2_sf(self.g, self.df)


def goodness_of_fit(counts: np.ndarray, probs: np.ndarray, minimum: float = MIN_EXPECTED) -> Fit:
    """Pearson chi-square and G statistics of `counts` (per outcome) against `probs`.

    Outcomes of probability 0 are not binned: observing one is reported in `impossible`. The
    others are binned one per outcome, except that the least likely are pooled into one bin until
    every bin, the pooled one included, expects at least `minimum` samples.
    """
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if counts.shape != probs.shape:
        raise ConfigError(f"counts {counts.shape} and probabilities {probs.shape} differ in shape")
    n = counts.sum()
    if n <= 0:
        raise ConfigError("a goodness-of-fit test needs at least one sample")
    possible = probs > 0
    impossible = int(counts[~possible].sum())
    probs = probs[possible] / probs[possible].sum()
    counts = counts[possible]
    expected = probs * n
    order = np.argsort(expected, kind="stable")
    cumulative = np.cumsum(expected[order])
    small = int((expected < minimum).sum())
    pooled = small
    if small:  # grow the pool until it expects `minimum` samples itself
        pooled = max(small, int(np.searchsorted(cumulative, minimum)) + 1)
        pooled = min(pooled, len(order))
    keep, pool = order[pooled:], order[:pooled]
    observed = np.append(counts[keep], counts[pool].sum()) if pooled else counts[keep]
    wanted = np.append(expected[keep], expected[pool].sum()) if pooled else expected[keep]
    chi2 = float(((observed - wanted) ** 2 / wanted).sum())
    seen = observed > 0
    g = float(2 * (observed[seen] * np.log(observed[seen] / wanted[seen])).sum())
    pooled_mass = float(probs[pool].sum()) if pooled else 0.0
    return Fit(int(n), chi2, g, len(observed) - 1, pooled_mass, impossible)


def combined(fits: Sequence[Fit]) -> Fit:
    """Independent fits as one: statistics and degrees of freedom add up."""
    return Fit(
        min(f.samples for f in fits), sum(f.chi2 for f in fits), sum(f.g for f in fits), sum(f.df for f in fits),
        max(f.pooled_mass for f in fits), sum(f.impossible for f in fits),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: a test is rejected at family-wise level alpha when its adjusted p is
    <= alpha, whatever the dependence between the tests."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [1.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
