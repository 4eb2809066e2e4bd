"""Speculative Jacobi Decoding (SJD, arXiv 2410.01699): Jacobi iteration with sampling, lossless.

Drafts carry the distribution q they were sampled from; each pass accepts a prefix with the
speculative rule min(1, p/q), resamples the first rejection from max(0, p - q), and redraws the
later slots from this pass's p (which becomes their q). Fresh drafts count as given tokens
(q one-hot), as in the reference implementation. The reference redraws independently every pass
(`coupling="independent"`, the default); `coupling="gumbel"` couples redraws across passes so
drafts stop churning (the idea of coupled speculative decoding), still exactly; `coupling="maximal"` keeps each previous draft with the largest probability any
coupling allows, min(1, p(x)/q(x)), and redraws from max(0, p - q) otherwise (maximal coupling,
as in speculative coupled decoding, arXiv 2510.24211).
"""

from __future__ import annotations

import attrs
import torch

from ..core.strategy import DecodeContext
from ..core.verify import maximal_redraw, sample, speculative_accept
from .drafting import CoupledDraws, carry_over, check_coupling, narrowed
from .jacobi import Jacobi


@attrs.define
class SJD(Jacobi):
    """Speculative Jacobi Decoding with probabilistic acceptance and residual resampling."""

    name = "sjd"

    coupling: str = attrs.field(default="independent", validator=check_coupling)
    _q: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _coupled: CoupledDraws | None = attrs.field(default=None, init=False, repr=False)

    def reset(self, ctx: DecodeContext) -> None:
        self._drafts, self._q = None, None
        self._coupled = None
        if self.coupling == "gumbel":
            self._coupled = CoupledDraws(ctx.batch, self.window, ctx.vocab_size, ctx.generator, ctx.device)

    def _narrow(self, width: int) -> None:
        self._drafts, self._q = narrowed(width, self._drafts, self._q)
        if self._coupled is not None:
            self._coupled.narrow(width)

    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        q = self._q
        if q is None:  # first pass: every draft is fresh
            q = torch.nn.functional.one_hot(drafts, ctx.vocab_size).to(p.dtype)
        return speculative_accept(p, drafts, q, ctx.generator)

    def outputs(self, ctx: DecodeContext, p: torch.Tensor) -> torch.Tensor:
        if self.coupling == "maximal":  # self._drafts / self._q are still this pass's drafts
            return maximal_redraw(p, self._drafts, self._q, ctx.generator)
        return sample(p, ctx.generator) if self._coupled is None else self._coupled.draw(p)

    def _redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        stale = super()._redraft(ctx, outputs, p, accepted, next_token)
        q, _ = carry_over(p, accepted, stale.shape[1])
        fresh = torch.nn.functional.one_hot(self._drafts, ctx.vocab_size).to(p.dtype)
        self._q = torch.where(stale.unsqueeze(-1), fresh, q)
        if self._coupled is not None:
            self._coupled.advance(accepted)
        return stale

