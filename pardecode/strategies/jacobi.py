"""Jacobi decoding: iterate the window to a fixed point of greedy decoding.

Each pass feeds the current drafts; drafts equal to the arg-max given their prefix are accepted,
the first mismatch is replaced by the arg-max, and the pass's arg-maxes for the later slots become
the next drafts. The output is exactly greedy AR's; the gain is the passes saved when drafts
converge early.
"""

from __future__ import annotations

import attrs
import torch

from ..core.errors import ConfigError
from ..core.strategy import DecodeContext, Proposal, Strategy, Verdict, positive_int
from ..core.verify import greedy_accept
from .drafting import carry_over, check_init, fresh_tokens, narrowed


@attrs.define
class Jacobi(Strategy):
    """Greedy Jacobi iteration with exact-match acceptance."""

    name = "jacobi"

    window: int = attrs.field(default=16, validator=positive_int("window"))
    init: str = attrs.field(default="random", validator=check_init)
    _drafts: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)

    def reset(self, ctx: DecodeContext) -> None:
        if not ctx.sampling.greedy:
            raise ConfigError(
                f"jacobi decodes greedily; got temperature {ctx.sampling.temperature}. "
                "Use temperature 0, or strategy 'sjd' to sample"
            )
        self._drafts = None

    def propose(self, ctx: DecodeContext) -> Proposal:
        width = ctx.useful_width(self.window)
        if self._drafts is None:
            self._drafts = fresh_tokens(ctx, ctx.offsets(width), None, self.init)
        self._narrow(width)
        return Proposal(self._drafts)

    def _narrow(self, width: int) -> None:
        """Drop draft state past `width` (slots past every row's end are never scored again)."""
        (self._drafts,) = narrowed(width, self._drafts)

    # the two points where speculative Jacobi decoding differs
    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        return greedy_accept(p, drafts)

    def outputs(self, ctx: DecodeContext, p: torch.Tensor) -> torch.Tensor:
        """Long[B, W+1]: this pass's token for every slot, the next drafts' source."""
        return p.argmax(-1)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict:
        accepted, next_token = self.accept(ctx, proposal.tokens, p)
        self._redraft(ctx, self.outputs(ctx, p), p, accepted, next_token)
        return Verdict(accepted, next_token)

    def _redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        """Carry the pass's outputs over to the next window; fill slots beyond its reach fresh."""
        width = self._drafts.shape[1]
        drafts, stale = carry_over(outputs, accepted, width)
        carried = (~stale).sum(1)
        left = torch.cat([next_token.unsqueeze(1), drafts], 1)[torch.arange(ctx.batch, device=ctx.device), carried]
        offsets = ctx.offsets(width, start=accepted + 1)
        self._drafts = torch.where(stale, fresh_tokens(ctx, offsets, left, self.init), drafts)
        return stale
