"""Speculative Jacobi Decoding (SJD, arXiv 2410.01699): Jacobi iteration with sampling, lossless.

Drafts carry the distribution q they were sampled from; each pass accepts a prefix with the
speculative rule min(1, p/q), resamples the first rejection from max(0, p - q), and redraws the
later slots from this pass's p (which becomes their q). Fresh drafts count as given tokens
(q one-hot), as in the reference implementation. The reference redraws independently every pass
(`coupling="independent"`, the default); `coupling="gumbel"` couples redraws across passes so
drafts stop churning (the idea of coupled speculative decoding), still exactly;
`coupling="maximal"` keeps each previous draft with the largest probability any coupling allows,
min(1, p(x)/q(x)), and redraws from max(0, p - q) otherwise (maximal coupling,
as in speculative coupled decoding, arXiv 2510.24211).
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.strategy import DecodeContext
from ..core.verify import maximal_redraw, sample, speculative_accept
from .drafting import CoupledDraws, auto_or, carry_over, check_coupling, narrowed
from .jacobi import Jacobi


@attrs.define
class SJD(Jacobi):
    """Speculative Jacobi Decoding with probabilistic acceptance and residual resampling."""

    name = "sjd"
    claim = Claim.exact()

    coupling: str = attrs.field(default="independent", validator=check_coupling)
    #: Float[B, W, V]: the distribution each draft was drawn from (None at the first pass, every draft fresh)
    q: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    #: Bool[B, W]: drafts that were given rather than drawn (fresh ones): their q is one-hot, whatever `q` holds
    given: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _coupled: CoupledDraws | None = attrs.field(default=None, init=False, repr=False)

    def reset(self, ctx: DecodeContext) -> None:
        self.drafts, self.q, self.given = None, None, None
        self._coupled = None
        if self.coupling == "gumbel":
            self._coupled = CoupledDraws(ctx.batch, auto_or(self.window, 0), ctx.vocab_size, ctx.generator, ctx.device)

    def widen(self, ctx: DecodeContext, fresh: torch.Tensor) -> None:
        super().widen(ctx, fresh)
        if self.q is not None:  # fresh drafts are given: q one-hot, whatever q holds there
            self.q = torch.cat([self.q, self.q.new_zeros(*fresh.shape, self.q.shape[-1])], 1)
            self.given = torch.cat([self.given, torch.ones_like(fresh, dtype=torch.bool)], 1)

    def narrow(self, width: int) -> None:
        self.drafts, self.q, self.given = narrowed(width, self.drafts, self.q, self.given)
        if self._coupled is not None:
            self._coupled.fit(width)

    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        # q is None at the first pass: every draft is fresh, q one-hot
        return speculative_accept(p, drafts, self.q, ctx.generator, self.given)

    def outputs(self, ctx: DecodeContext, p: torch.Tensor) -> torch.Tensor:
        if self.coupling == "maximal":  # self.drafts / self.q are still this pass's drafts
            return maximal_redraw(p, self.drafts, self.draft_q(ctx, p.dtype), ctx.generator)
        return sample(p, ctx.generator) if self._coupled is None else self._coupled.draw(p)

    def draft_q(self, ctx: DecodeContext, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Float[B, W, V]: the distribution each current draft was drawn from (one-hot where given)."""
        one_hot = torch.nn.functional.one_hot(self.drafts, ctx.vocab_size).to(dtype)
        if self.q is None:  # first pass: every draft is fresh
            return one_hot
        return torch.where(self.given.unsqueeze(-1), one_hot, self.q)  # `given` is set with `q`

    def redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        stale = super().redraft(ctx, outputs, p, accepted, next_token)
        self.q, _ = carry_over(p, accepted, stale.shape[1])
        self.given = stale  # fresh drafts: q one-hot, whatever q holds there
        if self._coupled is not None:
            self._coupled.advance(accepted)
        return stale
