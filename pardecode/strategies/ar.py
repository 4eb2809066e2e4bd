"""Plain autoregressive decoding: the window-of-zero case of the loop, one token per pass."""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.strategy import DecodeContext, Proposal, Strategy, Verdict
from ..core.verify import speculative_accept


@attrs.define
class AR(Strategy):
    """Sample each token from p (arg-max at temperature 0): the reference every strategy matches."""

    name = "ar"
    claim = Claim.exact()

    def propose(self, ctx: DecodeContext) -> Proposal:
        return Proposal(torch.empty(ctx.batch, 0, dtype=torch.long, device=ctx.device))

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict:
        return Verdict(*speculative_accept(p, proposal.tokens, None, ctx.generator))
