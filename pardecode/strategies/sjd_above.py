"""SJD with 2-D drafts: a fresh draft copies the token one grid row up.

The worked example of a strategy that uses the layout (`DecodeContext.grid`). Image rows resemble
the row above them far more than a random token, so a slot entering the window is drafted as the
token at `offset - grid.stride` when that token is known: committed, committed by this pass, or a
draft carried in the window. Slots with nothing known above them (the first row, row ends, end
tokens, a span without a grid) keep the `init` draft. Verification is SJD's own (a copied draft is
a given token, q one-hot), so the output is exactly AR-distributed: how drafts are chosen changes
only how many are accepted.
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.strategy import DecodeContext, Proposal
from .sjd import SJD


@attrs.define
class SJDAbove(SJD):
    """SJD whose fresh drafts copy the token one image row up (the layout's grid), verified exactly."""

    name = "sjd_above"
    claim = Claim.exact()

    def propose(self, ctx: DecodeContext) -> Proposal:
        first = self.drafts is None
        proposal = super().propose(ctx)
        if not first or ctx.grid is None:
            return proposal
        width = proposal.width
        span = torch.cat([ctx.tokens, ctx.tokens.new_zeros(ctx.batch, width + 1)], 1)
        known = torch.zeros_like(span, dtype=torch.bool)
        fresh = torch.ones_like(self.drafts, dtype=torch.bool)
        self.drafts = self._copy_above(ctx, self.drafts, fresh, ctx.offsets(width), span, known)
        return Proposal(self.drafts)

    def redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        old = self.drafts  # this pass's drafts: the first `accepted` are being committed
        stale = super().redraft(ctx, outputs, p, accepted, next_token)
        if ctx.grid is None or not bool(stale.any()):
            return stale
        rows = torch.arange(ctx.batch, device=ctx.device)
        # what is known after this pass, by span offset: committed tokens, this pass's commits
        # (accepted drafts, then next_token) and the drafts carried into the next window
        width = self.drafts.shape[1]
        span = torch.cat([ctx.tokens, ctx.tokens.new_zeros(ctx.batch, old.shape[1] + width + 2)], 1)
        slots = torch.arange(span.shape[1], device=ctx.device)
        known = slots < ctx.committed.unsqueeze(1)
        passed = torch.cat([old, old.new_zeros(ctx.batch, 1)], 1)
        passed[rows, accepted] = next_token
        at = ctx.offsets(passed.shape[1])
        kept = torch.arange(passed.shape[1], device=ctx.device) <= accepted.unsqueeze(1)
        span.scatter_(1, at, torch.where(kept, passed, span.gather(1, at)))
        known.scatter_(1, at, kept | known.gather(1, at))
        offsets = ctx.offsets(width, start=accepted + 1)
        span.scatter_(1, offsets, self.drafts)
        known.scatter_(1, offsets, ~stale)
        # fresh slots are given tokens for SJD's verification (q one-hot), copied or not
        self.drafts = self._copy_above(ctx, self.drafts, stale, offsets, span, known)
        return stale

    def _copy_above(self, ctx, drafts, fresh, offsets, span, known) -> torch.Tensor:
        """Long[B, W]: `drafts` with each `fresh` slot replaced by the known token one row up.

        `span`/`known` (Long/Bool[B, S]) hold every known token by offset. A copied slot becomes
        known in turn, so a window spanning several rows fills row by row: one vectorised step per
        image row in the window, never one per token.
        """
        up = ctx.grid.above(offsets)
        allowed = ctx.allowed_at(offsets)
        source = up.clamp(min=0)
        for _ in range(offsets.shape[1] // ctx.grid.stride + 1):
            value = span.gather(1, source)
            ok = fresh & (up >= 0) & known.gather(1, source) & ~known.gather(1, offsets)
            if allowed is not None:
                ok &= allowed.gather(-1, value.unsqueeze(-1)).squeeze(-1)
            if not bool(ok.any()):
                break
            drafts = torch.where(ok, value, drafts)
            span.scatter_(1, offsets, drafts)
            known.scatter_(1, offsets, ok | known.gather(1, offsets))
        return drafts
