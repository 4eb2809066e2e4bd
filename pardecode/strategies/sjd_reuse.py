"""Draft reuse across passes (the SJD++ idea, arXiv 2512.07503): SJD that keeps confident drafts. Lossless.

SJD redraws every unaccepted slot from the new pass's p, so a draft the model still likes is thrown
away and replaced by a fresh sample. Here a slot's previous draft x is reused as-is when this
pass rates it confidently, p(x) >= `threshold`; otherwise the slot is redrawn from p. The reused
draft's distribution is then the mixture

    r(y) = q(y) 1[p(y) >= threshold] + (1 - q({p >= threshold})) p(y)

(q: the distribution x was drawn from; the confident set depends only on p, which at a slot is
computed from earlier inputs and not from x itself), and r is stored as the slot's draft
distribution, so the next speculative check min(1, p'/r) keeps the output exactly AR-distributed.
`threshold` above 1 reuses nothing (plain SJD). Redraws are independent (a coupled redraw would
share randomness with the reused draft and break the mixture's formula).
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.errors import ConfigError
from ..core.strategy import DecodeContext
from ..core.verify import sample
from .drafting import carry_over
from .jacobi import Jacobi
from .sjd import SJD


def _probability(_, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{attribute.name} must be a number > 0, got {value!r}")


def _independent(_, attribute, value):
    if value != "independent":
        raise ConfigError(f"sjd_reuse redraws independently (coupling='independent'), got {value!r}")


@attrs.define
class SJDReuse(SJD):
    """SJD that reuses drafts the new pass rates at or above `threshold`, with the exact mixture as q."""

    name = "sjd_reuse"
    claim = Claim.exact()

    threshold: float = attrs.field(default=0.05, validator=_probability)
    coupling: str = attrs.field(default="independent", validator=_independent)
    _mix: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)

    def outputs(self, ctx: DecodeContext, p: torch.Tensor) -> torch.Tensor:
        drafts = self.drafts
        width = drafts.shape[1]
        q = self.draft_q(ctx, p.dtype)
        p_slots = p[:, :width]
        confident = p_slots >= self.threshold  # Bool[B, W, V]: depends on p only
        reuse = confident.gather(-1, drafts.unsqueeze(-1)).squeeze(-1)
        drawn = sample(p, ctx.generator)
        kept = q * confident
        mix = kept + (1 - kept.sum(-1, keepdim=True)).clamp_min(0) * p_slots
        self._mix = torch.cat([mix, p[:, width:]], 1)
        return torch.cat([torch.where(reuse, drafts, drawn[:, :width]), drawn[:, width:]], 1)

    def redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        stale = Jacobi.redraft(self, ctx, outputs, p, accepted, next_token)
        q, _ = carry_over(self._mix, accepted, stale.shape[1])
        fresh = torch.nn.functional.one_hot(self.drafts, ctx.vocab_size).to(p.dtype)
        self.q = torch.where(stale.unsqueeze(-1), fresh, q)
        self.given = stale
        return stale
