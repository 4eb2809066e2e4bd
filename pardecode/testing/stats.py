"""Goodness-of-fit statistics for certification: pooled chi-square and G tests, their exact
(simulated) p-values, Holm's correction, and the smallest deviation a test detects at its sample size.

Asymptotic p-values come from torch's regularised incomplete gamma functions (float64), simulated
ones from numpy's multinomial draws, so certification needs no scipy (tests check these against
scipy).

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


def chi2_sf_array(x: np.ndarray, df: int) -> np.ndarray:
    """`chi2_sf` of every statistic in `x`."""
    if df <= 0:
        return np.ones_like(np.asarray(x, dtype=np.float64))
    x = torch.as_tensor(np.asarray(x, dtype=np.float64)).clamp(min=0)
    return torch.special.gammaincc(torch.full_like(x, df / 2), x / 2).numpy()


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
    #: the binning of each independent part (one, or one per prompt of a combined fit): what an
    #: exact sampler's statistics are drawn from (`null_statistics`)
    parts: tuple[Bins, ...] = attrs.field(default=(), repr=False, eq=False)

    @property
    def p_chi2(self) -> float:
        return 0.0 if self.impossible else chi2_sf(self.chi2, self.df)

    @property
    def p_g(self) -> float:
        return 0.0 if self.impossible else chi2_sf(self.g, self.df)


@attrs.frozen
class Bins:
    """How a sample of `samples` outcomes is binned: one bin per possible outcome, except that the
    least likely are pooled into one (last) bin until every bin, the pooled one included, expects at
    least `minimum` samples. Outcomes of probability 0 get no bin."""

    samples: int
    possible: np.ndarray  # Bool[outcomes]: probability > 0
    keep: np.ndarray  # indices (among the possible outcomes) binned alone
    pool: np.ndarray  # indices pooled into the last bin (may be empty)
    expected: np.ndarray  # Float64[bins]: expected samples per bin
    pooled_mass: float

    @classmethod
    def of(cls, probs: np.ndarray, samples: int, minimum: float = MIN_EXPECTED) -> Bins:
        probs = np.asarray(probs, dtype=np.float64)
        possible = probs > 0
        probs = probs[possible] / probs[possible].sum()
        expected = probs * samples
        order = np.argsort(expected, kind="stable")
        small = int((expected < minimum).sum())
        pooled = small
        if small:  # grow the pool until it expects `minimum` samples itself
            pooled = min(max(small, int(np.searchsorted(np.cumsum(expected[order]), minimum)) + 1), len(order))
        keep, pool = order[pooled:], order[:pooled]
        wanted = np.append(expected[keep], expected[pool].sum()) if pooled else expected[keep]
        return cls(samples, possible, keep, pool, wanted, float(probs[pool].sum()))

    @property
    def df(self) -> int:
        return len(self.expected) - 1

    def observed(self, counts: np.ndarray) -> np.ndarray:
        """Float64[..., bins] from counts per outcome Float[..., outcomes] (probability-0 outcomes dropped)."""
        counts = np.asarray(counts, dtype=np.float64)[..., self.possible]
        if not len(self.pool):
            return counts[..., self.keep]
        return np.concatenate([counts[..., self.keep], counts[..., self.pool].sum(-1, keepdims=True)], -1)

    def pearson(self, observed: np.ndarray) -> np.ndarray:
        """Pearson's statistic of every sample in Float[..., bins]."""
        return ((observed - self.expected) ** 2 / self.expected).sum(-1)

    def g(self, observed: np.ndarray) -> np.ndarray:
        """The G statistic (twice the log-likelihood ratio) of every sample in Float[..., bins]."""
        ratio = np.where(observed > 0, observed / self.expected, 1.0)
        return 2 * (observed * np.log(ratio)).sum(-1)


def goodness_of_fit(counts: np.ndarray, probs: np.ndarray, minimum: float = MIN_EXPECTED) -> Fit:
    """Pearson chi-square and G statistics of `counts` (per outcome) against `probs`, binned as
    `Bins` says; observing an outcome of probability 0 is reported in `impossible`."""
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if counts.shape != probs.shape:
        raise ConfigError(f"counts {counts.shape} and probabilities {probs.shape} differ in shape")
    n = counts.sum()
    if n <= 0:
        raise ConfigError("a goodness-of-fit test needs at least one sample")
    bins = Bins.of(probs, int(n), minimum)
    observed = bins.observed(counts)
    impossible = int(counts[~bins.possible].sum())
    return Fit(
        int(n), float(bins.pearson(observed)), float(bins.g(observed)), bins.df, bins.pooled_mass, impossible, (bins,)
    )


def combined(fits: Sequence[Fit]) -> Fit:
    """Independent fits as one: statistics and degrees of freedom add up."""
    return Fit(
        min(f.samples for f in fits),
        sum(f.chi2 for f in fits),
        sum(f.g for f in fits),
        sum(f.df for f in fits),
        max(f.pooled_mass for f in fits),
        sum(f.impossible for f in fits),
        tuple(b for f in fits for b in f.parts),
    )


def null_statistics(
    parts: Sequence[Bins], draws: int, rng: np.random.Generator, chunk: int = 50_000
) -> tuple[np.ndarray, np.ndarray]:
    """(Pearson, G) Float64[draws]: the statistics of `draws` samples of an exact sampler, binned as
    `parts` are (summed over them), drawn exactly (multinomial over each part's bins). What a test's
    asymptotic p-values are checked against (`perf/certify_power.py null`)."""
    pearson, g = np.zeros(draws), np.zeros(draws)
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        for bins in parts:
            observed = rng.multinomial(bins.samples, bins.expected / bins.expected.sum(), size=size).astype(np.float64)
            pearson[start : start + size] += bins.pearson(observed)
            g[start : start + size] += bins.g(observed)
    return pearson, g


def simulated_p(
    parts: Sequence[Bins], statistic: float, method: str, draws: int, rng: np.random.Generator, stop: int = 5
) -> float:
    """The Monte Carlo p-value of `statistic` ("chi-square": Pearson's, or "G", summed over `parts`)
    under an exact sampler: the share of exact draws whose statistic reaches it. It is exact at any
    sample size, where the chi-square approximation is not: its far tail, at the levels a
    certification tests at, was measured up to several times too light (docs/certify.md).

    Sequential (Besag and Clifford, 1991): drawing stops at the `stop`-th statistic that reaches
    `statistic`, after l draws, with p = stop / l, or after `draws` draws with k reaching it, with
    p = (k + 1) / (draws + 1). Either is a valid p-value; a clearly unremarkable statistic costs a
    few hundred draws, and only one below about stop / draws costs all of them.
    """
    which = 0 if method == "chi-square" else 1
    reached, done, chunk = 0, 0, 256
    while done < draws:
        size = min(chunk, draws - done)
        hits = np.cumsum(null_statistics(parts, size, rng)[which] >= statistic)
        if reached + hits[-1] >= stop:
            return stop / (done + int(np.searchsorted(hits, stop - reached)) + 1)
        reached, done, chunk = reached + int(hits[-1]), done + size, chunk * 2
    return (reached + 1) / (draws + 1)


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
