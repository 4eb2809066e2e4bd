"""Test strategies that express single-window strategies through placed slots (core.fronts)."""

from __future__ import annotations

import attrs
import torch

from pardecode.core.fronts import Commits
from pardecode.core.strategy import DecodeContext, Proposal, Strategy, Verdict


@attrs.define
class Placed(Strategy):
    """Runs `inner` (a single-window strategy) with explicit offsets: [pending, drafts...] per row.

    Same random draws and the same p, so the tokens must equal `inner`'s bit for bit.
    """

    inner: Strategy
    name = "placed"
    _proposal: Proposal | None = attrs.field(default=None, init=False)

    @property
    def lossless(self):  # noqa: D102 (mirrors the wrapped strategy)
        return self.inner.lossless

    def reset(self, ctx: DecodeContext) -> None:
        self.inner.reset(ctx)

    def propose(self, ctx: DecodeContext) -> Proposal:
        self._proposal = inner = self.inner.propose(ctx)
        width = inner.width
        if ctx.step == 0:
            offsets = ctx.offsets(width)
            return Proposal(inner.tokens, inner.noisy, offsets=torch.where(offsets < ctx.length, offsets, -1))
        pending = ctx.tokens.gather(1, (ctx.committed - 1).clamp(min=0).unsqueeze(1))
        offsets = ctx.offsets(width + 1, start=-1)  # slots past a row's end are unused
        offsets = torch.where(offsets < ctx.length, offsets, -1)
        return Proposal(torch.cat([pending, inner.tokens], 1), offsets=offsets)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Commits:
        inner = self._proposal
        width = inner.width
        first = ctx.step == 0
        verdict: Verdict = self.inner.verify(ctx, inner, p[:, : width + 1] if first else p[:, 1 : width + 2])
        k = torch.arange(width + 1, device=ctx.device)
        offsets = ctx.committed.unsqueeze(1) + k
        drafts = torch.cat([inner.tokens, inner.tokens.new_zeros(ctx.batch, 1)], 1)
        tokens = torch.where(k < verdict.accepted.unsqueeze(1), drafts, verdict.next_token.unsqueeze(1))
        use = (k <= verdict.accepted.unsqueeze(1)) & (offsets < ctx.length)
        source = (k + (0 if first else 1)).expand_as(offsets)
        return Commits(torch.where(use, offsets, -1), tokens, source)
