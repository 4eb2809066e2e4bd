"""Noise levels for next-clean-token training: random segments, each at its own level.

Decoding windows look like a clean prefix followed by noise that rises with distance; training
sees both unordered random segments and, for a fraction of rows, that rising pattern after a
random clean prefix. Levels are log-uniform in [sigma_min, sigma_max], so any schedule inside
that range decodes with levels the model has seen.
"""

from __future__ import annotations

import math

import attrs
import torch

from ..core.errors import ConfigError


def _fraction(_, attribute, value):
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise ConfigError(f"{attribute.name} must be in [0, 1], got {value!r}")


def _positive_int(_, attribute, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be an integer >= 1, got {value!r}")


@attrs.frozen
class SegmentNoise:
    """How training rows are cut into noisy segments."""

    segment_min: int = attrs.field(default=4, validator=_positive_int)
    segment_max: int = attrs.field(default=32, validator=_positive_int)
    clean_ratio: float = attrs.field(default=0.3, validator=_fraction)
    rising_fraction: float = attrs.field(default=0.5, validator=_fraction)
    sigma_min: float = 0.1
    sigma_max: float = 10.0

    def __attrs_post_init__(self):
        if self.segment_min > self.segment_max:
            raise ConfigError(f"segment_min ({self.segment_min}) must not exceed segment_max ({self.segment_max})")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")

    def levels(self, noisable: torch.Tensor, rows: int, generator: torch.Generator) -> torch.Tensor:
        """Float[rows, T]: the noise level of every position (0 = clean; only `noisable` columns noised)."""
        width = noisable.shape[0]
        cols = torch.arange(width)
        length = torch.randint(self.segment_min, self.segment_max + 1, (rows, 1), generator=generator)
        phase = (torch.rand(rows, 1, generator=generator) * length).long()
        segment = (cols + phase) // length  # Long[rows, T]
        count = int(segment.max()) + 1
        log_lo, log_hi = math.log(self.sigma_min), math.log(self.sigma_max)
        sigma = torch.exp(log_lo + torch.rand(rows, count, generator=generator) * (log_hi - log_lo))
        rising = torch.rand(rows, 1, generator=generator) < self.rising_fraction
        sigma = torch.where(rising, sigma.sort(1).values, sigma)
        clean = torch.rand(rows, count, generator=generator) < self.clean_ratio
        # rising rows: a clean prefix up to a random segment, then rising noise
        cut = (torch.rand(rows, 1, generator=generator) * count).long()
        clean = torch.where(rising, torch.arange(count) < cut, clean)
        sigma = sigma.masked_fill(clean, 0.0)
        return sigma.gather(1, segment) * noisable
