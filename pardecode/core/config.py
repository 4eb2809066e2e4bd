"""Sampling settings, validated on construction."""

from __future__ import annotations

import math

import attrs

from .errors import ConfigError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@attrs.frozen
class SamplingConfig:
    """How logits become the target distribution p.

    temperature 0 means greedy (p is one-hot on the arg-max); top_k 0 and top_p 1 switch those
    filters off; cfg_scale 1 switches classifier-free guidance off (no unconditional branch runs).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    cfg_scale: float = 1.0

    def __attrs_post_init__(self):
        _check(
            isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature >= 0,
            f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}",
        )
        _check(
            isinstance(self.top_k, int) and not isinstance(self.top_k, bool) and self.top_k >= 0,
            f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}",
        )
        _check(
            isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1,
            f"top_p must be in (0, 1] (1 = off), got {self.top_p!r}",
        )
        _check(
            isinstance(self.cfg_scale, (int, float)) and math.isfinite(self.cfg_scale) and self.cfg_scale >= 0,
            f"cfg_scale must be a finite number >= 0 (1 = no guidance), got {self.cfg_scale!r}",
        )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale != 1
