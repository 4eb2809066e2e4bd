"""Speculative Jacobi Decoding (SJD, arXiv 2410.01699): Jacobi iteration with sampling, lossless.

Drafts carry the distribution q they were sampled from; each pass accepts a prefix with the
speculative rule min(1, p/q), resamples the first rejection from max(0, p - q), and redraws the
later slots from this pass's p (which becomes their q). Fresh drafts count as given tokens
(q one-hot), as in the reference implementation. The reference redraws independently every pass
(`coupling="independent"`, the default); `coupling="gumbel"` couples redraws across passes so
drafts stop churning (the idea of coupled speculative decoding), still exactly;
`coupling="maximal"` keeps each previous draft with the largest probability any coupling allows, min(1, p(x)/q(x)), and redraws from max(0, p - q) otherwise (maximal coupling,
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
    _q: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _given: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)  # fresh: q one-hot
    _coupled: CoupledDraws | None = attrs.field(default=None, init=False, repr=False)

    def reset(self, ctx: DecodeContext) -> None:
        self._drafts, self._q, self._given = None, None, None
        self._coupled = None
        if self.coupling == "gumbel":
            self._coupled = CoupledDraws(ctx.batch, auto_or(self.window, 0), ctx.vocab_size, ctx.generator, ctx.device)

    def _widen(self, ctx: DecodeContext, fresh: torch.Tensor) -> None:
        super()._widen(ctx, fresh)
        if self._q is not None:  # fresh drafts are given: q one-hot, whatever _q holds there
            self._q = torch.cat([self._q, self._q.new_zeros(*fresh.shape, self._q.shape[-1])], 1)
            self._given = torch.cat([self._given, torch.ones_like(fresh, dtype=torch.bool)], 1)

    def _narrow(self, width: int) -> None:
        self._drafts, self._q, self._given = narrowed(width, self._drafts, self._q, self._given)
        if self._coupled is not None:
            self._coupled.fit(width)

    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        # q is None at the first pass: every draft is fresh, q one-hot
        return speculative_accept(p, drafts, self._q, ctx.generator, self._given)

    def outputs(self, ctx: DecodeContext, p: torch.Tensor) -> torch.Tensor:
        if self.coupling == "maximal":  # self._drafts / self._q are still this pass's drafts
            return maximal_redraw(p, self._drafts, self.draft_q(ctx, p.dtype), ctx.generator)
        return sample(p, ctx.generator) if self._coupled is None else self._coupled.draw(p)

    def draft_q(self, ctx: DecodeContext, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Float[B, W, V]: the distribution each current draft was drawn from (one-hot where given)."""
        one_hot = torch.nn.functional.one_hot(self._drafts, ctx.vocab_size).to(dtype)
        if self._q is None:  # first pass: every draft is fresh
            return one_hot
        return torch.where(self._given.unsqueeze(-1), one_hot, self._q)  # _given is set with _q

    def _redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        stale = super()._redraft(ctx, outputs, p, accepted, next_token)
        self._q, _ = carry_over(p, accepted, stale.shape[1])
        self._given = stale  # fresh drafts: q one-hot, whatever _q holds there
        if self._coupled is not None:
            self._coupled.advance(accepted)
        return stale

