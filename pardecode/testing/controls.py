"""Negative controls: SJD with a verification bug injected on purpose, at a chosen `strength`.

Each is exact at strength 0 and biased more as strength grows to 1. A certifier that does not flag
them has no power; `perf/certify_power.py` runs them at several strengths and seeds to
measure the smallest deviation a certification detects (docs/certify.md).

They are not registered by default. A package (or a test) that lists this module under the
`pardecode` entry-point group makes them certifiable by name: `pardecode certify control_accept_all`.
"""

from __future__ import annotations

import math

import attrs
import torch

from ..core.claims import Claim
from ..core.errors import ConfigError
from ..core.plugins import hookimpl
from ..core.strategy import DecodeContext, window_size
from ..core.verify import exact_acceptance, sample
from ..strategies.relaxed import Relaxed
from ..strategies.sjd import SJD

CONTROL = Claim.lossy("a negative control: biased on purpose")


def _strength(_, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 or math.isnan(value):
        raise ConfigError(f"{attribute.name} must be a number in [0, 1], got {value!r}")


@attrs.define
class SkipResidual(SJD):
    """Control: after a rejected draft, with probability `strength` the correction is drawn from p
    itself instead of the residual max(0, p - q), so the rejected draft comes back too often."""

    name = "control_skip_residual"
    lossless = False
    claim = CONTROL

    window: int | str = attrs.field(default=2, validator=window_size())
    strength: float = attrs.field(default=1.0, validator=_strength)

    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        accepted, next_token = super().accept(ctx, drafts, p)
        rows = torch.arange(ctx.batch, device=ctx.device)
        plain = sample(p[rows, accepted], ctx.generator)
        coin = torch.rand(ctx.batch, generator=ctx.generator, device=ctx.device)
        skip = (accepted < drafts.shape[1]) & (coin < self.strength)
        return accepted, torch.where(skip, plain, next_token)


@attrs.define
class TemperedRatio(Relaxed):
    """Control: drafts are accepted with min(1, p/q) ** (1 - `strength`), more often than the exact
    min(1, p/q) wherever p < q (the residual is the one that rule calls for)."""

    name = "control_tempered_ratio"
    claim = CONTROL

    window: int | str = attrs.field(default=2, validator=window_size())
    strength: float = attrs.field(default=1.0, validator=_strength)

    def acceptance(self, ctx, p, q):
        return exact_acceptance(p, q).pow(1 - self.strength)


@attrs.define
class AcceptAll(SJD):
    """Control: with probability `strength` a row keeps every draft of the pass unverified (then a
    bonus token drawn from p after them)."""

    name = "control_accept_all"
    lossless = False
    claim = CONTROL

    window: int | str = attrs.field(default=2, validator=window_size())
    strength: float = attrs.field(default=1.0, validator=_strength)

    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        accepted, next_token = super().accept(ctx, drafts, p)
        width = drafts.shape[1]
        bonus = sample(p[:, width], ctx.generator)
        skip = torch.rand(ctx.batch, generator=ctx.generator, device=ctx.device) < self.strength
        return torch.where(skip, width, accepted), torch.where(skip, bonus, next_token)


CONTROLS = (SkipResidual, TemperedRatio, AcceptAll)


@hookimpl
def pardecode_register_strategies(register):
    for cls in CONTROLS:
        register(cls.name, cls, cls.__doc__)
