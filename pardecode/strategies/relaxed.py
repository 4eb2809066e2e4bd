"""Relaxed acceptance: SJD whose acceptance rule lets near-miss drafts through. Lossy, with a knob.

The relaxed-acceptance family in one module: `lantern`, `gsd` and `entropy_sd` are interchangeable
rules. Each rule gives, for every slot and every token y that could be the draft, an acceptance
probability a(y) >= the exact min(1, p(y)/q(y)); verification (`core.verify.relaxed_accept`) keeps
drafts while a uniform falls below a(draft), resamples the first rejected slot from
normalize(max(0, p - q a)) and draws the bonus from p. At the knob's exact end every rule is
a = min(1, p/q): plain SJD, exactly AR's distribution.

Every pass reports, in `Trace.diagnostics["tv_bound"]` per row, the sum over the slots it
committed of the total variation distance between the distribution the rule commits a token from
and p (computed exactly per slot, given the slot's prefix). Summed over an image's passes, its
expectation bounds the total variation distance between the image's token sequence and AR's.

Rules:
- `lantern` (LANTERN, arXiv 2410.03355): the draft counts with the probability of its latent
  neighbourhood A(y): y plus its `k` nearest image tokens in the codebook, nearest first, as long
  as their added probability stays within `delta`; a(y) = min(1, p(A(y)) / q(y)). The relaxation
  moves at most `delta` of probability per slot, LANTERN's total variation bound. Knob: delta
  (0: exact).
- `gsd` (Grouped Speculative Decoding, arXiv 2508.07747): the draft counts with the probability of
  its dynamic group: y plus those of its `k` codebook neighbours that are among the `candidates`
  most probable tokens of p (visually close and valid here); a(y) = min(1, p(G(y)) / q(y)).
  Knob: k (0: exact).
- `entropy_sd` (entropy-aware acceptance, arXiv 2510.09012): the ratio is relaxed more where the
  model is uncertain: a(y) = min(1, (p(y)/q(y)) ** (1 / (1 + strength * H))), H the entropy of p
  over log of its support size (0..1). Knob: strength (0: exact).
"""

from __future__ import annotations

import math

import attrs
import torch

from ..core.claims import Claim
from ..core.errors import ConfigError
from ..core.neighbours import neighbours
from ..core.strategy import DecodeContext, Proposal, Verdict, non_negative_int, positive_int
from ..core.verify import exact_acceptance, relaxed_accept
from .sjd import SJD


def _non_negative(_, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ConfigError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.define
class Relaxed(SJD):
    """Base of relaxed-acceptance rules: subclasses give `acceptance(ctx, p, q)`."""

    lossless = False
    name = "relaxed"
    _tv: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)

    def acceptance(self, ctx: DecodeContext, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Float[B, W, V] acceptance probability of every token as the draft at every slot."""
        return exact_acceptance(p, q)

    def accept(self, ctx: DecodeContext, drafts: torch.Tensor, p: torch.Tensor):
        q = self.draft_q(ctx, p.dtype)
        a = self.acceptance(ctx, p[:, : drafts.shape[1]], q)
        accepted, next_token, self._tv = relaxed_accept(p, drafts, q, a, ctx.generator)
        return accepted, next_token

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict:
        verdict = super().verify(ctx, proposal, p)
        committed = torch.arange(self._tv.shape[1], device=ctx.device) <= verdict.accepted.unsqueeze(1)
        return attrs.evolve(verdict, diagnostics={"tv_bound": (self._tv * committed).sum(1)})


def _neighbourhood_mass(p: torch.Tensor, index: torch.Tensor, include: torch.Tensor) -> torch.Tensor:
    """Float[B, W, V]: p(y) plus the p of y's neighbours index[y] selected by include[B, W, V, k]."""
    return p + (p[..., index] * include).sum(-1)


@attrs.define
class Lantern(Relaxed):
    """LANTERN: accept with the probability of the draft's latent neighbourhood, within a TV budget."""

    name = "lantern"
    claim = Claim.exact_at(delta=0)

    k: int = attrs.field(default=8, validator=positive_int("k"))
    delta: float = attrs.field(default=0.1, validator=_non_negative)

    def acceptance(self, ctx, p, q):
        if self.delta == 0:
            return exact_acceptance(p, q)
        index, valid = neighbours(ctx.image_codebook, ctx.vocab_size, self.k, ctx.device, "strategy 'lantern'")
        mass = p[..., index] * valid  # [B, W, V, k], nearest first
        include = valid & (mass.cumsum(-1) <= self.delta)
        include = include.to(p.dtype).cumprod(-1)  # a prefix of the nearest neighbours
        return exact_acceptance(_neighbourhood_mass(p, index, include), q)


@attrs.define
class GSD(Relaxed):
    """Grouped speculative decoding: accept with the probability of the draft's dynamic token group."""

    name = "gsd"
    claim = Claim.exact_at(k=0)

    k: int = attrs.field(default=4, validator=non_negative_int)
    candidates: int = attrs.field(default=16, validator=positive_int("candidates"))

    def acceptance(self, ctx, p, q):
        if self.k == 0:
            return exact_acceptance(p, q)
        index, valid = neighbours(ctx.image_codebook, ctx.vocab_size, self.k, ctx.device, "strategy 'gsd'")
        top = min(self.candidates, p.shape[-1])
        kth = p.topk(top, dim=-1).values[..., -1:]
        plausible = (p >= kth) & (p > 0)  # Bool[B, W, V]
        include = valid & plausible[..., index]
        return exact_acceptance(_neighbourhood_mass(p, index, include.to(p.dtype)), q)


@attrs.define
class EntropySD(Relaxed):
    """Entropy-aware acceptance: the ratio p/q relaxed in proportion to the normalised entropy of p."""

    name = "entropy_sd"
    claim = Claim.exact_at(strength=0)

    strength: float = attrs.field(default=1.0, validator=_non_negative)

    def acceptance(self, ctx, p, q):
        exact = exact_acceptance(p, q)
        if self.strength == 0:
            return exact
        support = (p > 0).sum(-1, keepdim=True)
        entropy = -(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum(-1, keepdim=True)
        h = torch.where(support > 1, entropy / support.clamp_min(2).to(p.dtype).log(), torch.zeros_like(entropy))
        return exact.pow(1 / (1 + self.strength * h.clamp(0, 1)))


EntropyAware = EntropySD  # its former name
