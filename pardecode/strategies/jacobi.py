"""Jacobi decoding: iterate the window to a fixed point of greedy decoding.

Each pass feeds the current drafts; drafts equal to the arg-max given their prefix are accepted,
the first mismatch is replaced by the arg-max, and the pass's arg-maxes for the later slots become
the next drafts. The output is exactly greedy AR's; the gain is the passes saved when drafts
converge early.
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.errors import ConfigError
from ..core.strategy import DecodeContext, Proposal, Strategy, Verdict, window_size
from ..core.verify import greedy_accept
from .drafting import carry_over, check_init, fresh_tokens, narrowed


@attrs.define
class Jacobi(Strategy):
    """Greedy Jacobi iteration with exact-match acceptance."""

    name = "jacobi"
    claim = Claim.greedy()

    #: drafts per pass, or "auto": chosen before each pass for throughput (`pardecode.core.windows`)
    window: int | str = attrs.field(default="auto", validator=window_size())
    init: str = attrs.field(default="random", validator=check_init)
    #: Long[B, W]: the window's current drafts (None before the first pass); subclasses read and replace them
    drafts: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)

    def reset(self, ctx: DecodeContext) -> None:
        if not ctx.sampling.greedy:
            raise ConfigError(
                f"jacobi decodes greedily; got temperature {ctx.sampling.temperature}. "
                "Use temperature 0, or strategy 'sjd' to sample"
            )
        self.drafts = None

    def propose(self, ctx: DecodeContext) -> Proposal:
        width = ctx.draft_width(self.window)
        if self.drafts is None:
            self.drafts = fresh_tokens(ctx, ctx.offsets(width), None, self.init)
        have = self.drafts.shape[1]
        if width > have:  # an automatic window grew: new slots start fresh
            self.widen(
                ctx, fresh_tokens(ctx, ctx.offsets(width - have, start=have), self._left_of(ctx, have), self.init)
            )
        self.narrow(width)
        return Proposal(self.drafts)

    def _left_of(self, ctx: DecodeContext, slot: int) -> torch.Tensor | None:
        """Long[B]: the token just before draft slot `slot` (None before anything is committed)."""
        if slot:
            return self.drafts[:, slot - 1]
        return ctx.tokens.gather(1, (ctx.committed - 1).unsqueeze(1))[:, 0] if ctx.step else None

    # hooks a subclass extends when it keeps more per-draft state (sjd: each draft's q)
    def narrow(self, width: int) -> None:
        """Drop draft state past `width` (slots past every row's end are never scored again)."""
        (self.drafts,) = narrowed(width, self.drafts)

    def widen(self, ctx: DecodeContext, fresh: torch.Tensor) -> None:
        """Append fresh drafts (Long[B, k]) after the current ones."""
        self.drafts = torch.cat([self.drafts, fresh], 1)

    # the two points where speculative Jacobi decoding differs
    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        return greedy_accept(p, drafts)

    def outputs(self, ctx: DecodeContext, p: torch.Tensor) -> torch.Tensor:
        """Long[B, W+1]: this pass's token for every slot, the next drafts' source."""
        return p.argmax(-1)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict:
        accepted, next_token = self.accept(ctx, proposal.tokens, p)
        if proposal.width:  # a pass without drafts (an automatic window chose AR) leaves nothing to carry
            self.redraft(ctx, self.outputs(ctx, p), p, accepted, next_token)
        return Verdict(accepted, next_token)

    def redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        """Carry the pass's outputs over to the next window; fill slots beyond its reach fresh.

        Returns Bool[B, W], the slots filled fresh (`stale`). A subclass that drafts differently
        calls this first, then replaces `self.drafts` (and what it keeps per draft) at those slots.
        """
        width = self.drafts.shape[1]
        drafts, stale = carry_over(outputs, accepted, width)
        carried = (~stale).sum(1)
        left = torch.cat([next_token.unsqueeze(1), drafts], 1)[torch.arange(ctx.batch, device=ctx.device), carried]
        offsets = ctx.offsets(width, start=accepted + 1)
        self.drafts = torch.where(stale, fresh_tokens(ctx, offsets, left, self.init), drafts)
        return stale
