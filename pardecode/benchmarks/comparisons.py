"""Quality against AR on pooled images, independent of the spread of a handful of seeds.

- Prompt agreement: a two-proportion z-test (pooled standard error under the null) of the
  setting's agreeing images against its AR baseline's, and a 95% Wald interval for the difference.
- Fréchet distance (each set against the real test images): a permutation test of the difference
  (the two sets' images pooled and split at random `PERMUTATIONS` times, same sizes), and a 95%
  bootstrap percentile interval for the difference (each set resampled with replacement
  `BOOTSTRAPS` times; duplicates bias both sides alike, so only the difference is read).
A lossless setting matches AR when neither test rejects at ALPHA (two-sided); a lossy one is read
as what it costs: the differences with their intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

ALPHA = 0.05
PERMUTATIONS = 200
BOOTSTRAPS = 200


@attrs.frozen
class Comparison:
    """A setting's pooled quality minus its AR baseline's (positive agreement difference: better)."""

    n: int
    n_ar: int
    agreement_diff: float
    agreement_interval: tuple[float, float]
    agreement_p: float
    frechet_diff: float
    frechet_interval: tuple[float, float]
    frechet_p: float

    @property
    def matches(self) -> bool:
        return self.agreement_p >= ALPHA and self.frechet_p >= ALPHA

    def verdict(self, lossless: bool) -> str:
        lo, hi = self.agreement_interval
        cost = (
            f"costs {-self.agreement_diff:+.3f} agreement [{-hi:+.3f}, {-lo:+.3f}], "
            f"Fréchet {self.frechet_diff:+.1f} [{self.frechet_interval[0]:+.1f}, {self.frechet_interval[1]:+.1f}]"
        )
        if lossless:
            return "matches AR" if self.matches else "DIFFERS: " + cost
        return cost


def _normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportions(k: int, n: int, k_ar: int, n_ar: int) -> tuple[float, tuple[float, float], float]:
    """(difference k/n - k_ar/n_ar, its 95% Wald interval, two-sided p-value of the pooled z-test)."""
    p, p_ar = k / n, k_ar / n_ar
    diff = p - p_ar
    pooled = (k + k_ar) / (n + n_ar)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n_ar))
    pvalue = 1.0 if se0 == 0 else _normal_two_sided(diff / se0)
    se = math.sqrt(p * (1 - p) / n + p_ar * (1 - p_ar) / n_ar)
    return diff, (diff - 1.96 * se, diff + 1.96 * se), pvalue


def _frechet(features: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> float:
    from ..fashion.evaluator import frechet_distance_from_stats

    return frechet_distance_from_stats(features.mean(0), np.atleast_2d(np.cov(features, rowvar=False)), *reference)


def frechet_difference(
    features: np.ndarray, features_ar: np.ndarray, reference: tuple[np.ndarray, np.ndarray], seed: int = 0
) -> tuple[float, tuple[float, float], float]:
    """(FD(features) - FD(features_ar), 95% bootstrap interval, two-sided permutation p-value)."""
    rng = np.random.default_rng(seed)
    observed = _frechet(features, reference) - _frechet(features_ar, reference)
    pooled = np.concatenate([features, features_ar])
    n = len(features)
    extreme = 0
    for _ in range(PERMUTATIONS):
        order = rng.permutation(len(pooled))
        d = _frechet(pooled[order[:n]], reference) - _frechet(pooled[order[n:]], reference)
        extreme += abs(d) >= abs(observed)
    boots = [
        _frechet(features[rng.integers(0, n, n)], reference)
        - _frechet(features_ar[rng.integers(0, len(features_ar), len(features_ar))], reference)
        for _ in range(BOOTSTRAPS)
    ]
    interval = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)))
    return float(observed), interval, (extreme + 1) / (PERMUTATIONS + 1)


def compare(
    mine: tuple[np.ndarray, np.ndarray], ar: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]
) -> Comparison:
    """`mine` and `ar` are (Bool[N] agreeing, Float[N, D] features) of pooled images."""
    (ok, feats), (ok_ar, feats_ar) = mine, ar
    diff, interval, p = two_proportions(int(ok.sum()), len(ok), int(ok_ar.sum()), len(ok_ar))
    fd, fd_interval, fd_p = frechet_difference(feats, feats_ar, reference)
    return Comparison(len(ok), len(ok_ar), diff, interval, p, fd, fd_interval, fd_p)


def pooled_per_image(records: Sequence[dict], judge) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-image (agreeing, features) of a setting's repeat-0 images, or None without a judge that has them."""
    from .quality import unpack_images

    per_image = getattr(judge, "per_image", None)
    if per_image is None:
        return None
    oks, feats = [], []
    for r in records:
        if r["key"]["repeat"] != 0 or r.get("images") is None or not judge.accepts(r["key"]["prompt"]):
            continue
        images = unpack_images(r["images"])
        ok, f = per_image(images, [r["key"]["prompt"]] * len(images))
        oks.append(ok)
        feats.append(f)
    if not oks or sum(len(o) for o in oks) < 2:
        return None
    return np.concatenate(oks), np.concatenate(feats)
