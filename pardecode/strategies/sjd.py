"""Speculative Jacobi Decoding (SJD, arXiv 2410.01699): Jacobi iteration with sampling, lossless.

Drafts carry the distribution q they were sampled from; each pass accepts a prefix with the
speculative rule min(1, p/q), resamples the first rejection from max(0, p - q), and redraws the
later slots from this pass's p (which becomes their q). Fresh drafts count as given tokens
(q one-hot), as in the reference implementation.
"""

from __future__ import annotations

import attrs
import torch

from ..core.strategy import DecodeContext
from ..core.verify import sample, speculative_accept
from .drafting import carry_over
from .jacobi import Jacobi


@attrs.define
class SJD(Jacobi):
    """Speculative Jacobi Decoding with probabilistic acceptance and residual resampling."""

    name = "sjd"

    _q: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)

    def reset(self, ctx: DecodeContext) -> None:
        self._drafts, self._q = None, None

    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        q = self._q
        if q is None:  # first pass: every draft is fresh
            q = torch.nn.functional.one_hot(drafts, ctx.vocab_size).to(p.dtype)
        return speculative_accept(p, drafts, q, ctx.generator)

    def outputs(self, ctx: DecodeContext, p: torch.Tensor) -> torch.Tensor:
        return sample(p, ctx.generator)

    def _redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        stale = super()._redraft(ctx, outputs, p, accepted, next_token)
        q, _ = carry_over(p, accepted, self.window)
        fresh = torch.nn.functional.one_hot(self._drafts, ctx.vocab_size).to(p.dtype)
        self._q = torch.where(stale.unsqueeze(-1), fresh, q)
        return stale

