"""SJD-PAC (arXiv 2603.18599): speculative Jacobi decoding with proactive drafting and adaptive
continuation, the part of it that fits one draft window per pass. Lossless.

SJD-PAC observes that about half of SJD's passes accept a single token, because after the first
rejection SJD resamples every later draft and fills new slots blindly. Within one window per pass
this strategy does the following, each step keeping the committed sequence exactly AR-distributed:

- Adaptive continuation: drafts after the first rejection are not thrown away and resampled; each
  is carried to the next pass and kept with probability min(1, p(x)/q(x)) under this pass's p for
  its slot, redrawn from max(0, p - q) otherwise (`coupling="maximal"`, `core.verify.maximal_redraw`).
  A draft moves only as far as the new distribution demands, so a run of drafts behind a rejected
  slot usually survives to be verified again after the correction.
- Proactive drafting: slots entering the window are drafted from the most recent prediction the
  pass made (the bonus slot's p, restricted to the tokens the layout allows there) instead of
  uniformly, with that distribution stored as their q, so the speculative rule min(1, p/q) stays
  exact while fresh drafts land where the model puts its mass (`proactive=False`: SJD's fresh drafts).

The paper's several candidates for a slot, each with its own continuation, need a draft tree
(drafts at any offsets under a tree mask): that is `sjd_pac_tree`, on placed slots.
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.strategy import DecodeContext, Proposal, Verdict
from ..core.verify import (
    acceptance_probability,
    first_false,
    residual_distribution,
    sample,
    sample_with,
    take_per_row,
    uniforms,
)
from .drafting import carry_over, check_coupling, restricted
from .sjd import SJD


@attrs.define
class SJDPAC(SJD):
    """SJD with adaptive continuation (maximal coupling of carried drafts) and proactive drafting."""

    name = "sjd_pac"
    claim = Claim.exact()

    coupling: str = attrs.field(default="maximal", validator=check_coupling)
    proactive: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    #: True while `given` is known to be all False (every draft's q is in `q`): known on the host, no sync
    _explicit: bool = attrs.field(default=False, init=False, repr=False)

    def reset(self, ctx: DecodeContext) -> None:
        super().reset(ctx)
        self._explicit = False

    def widen(self, ctx: DecodeContext, fresh: torch.Tensor) -> None:
        super().widen(ctx, fresh)
        self._explicit = False  # the new slots are given

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict:
        fused = self.coupling == "maximal" and self.proactive and self.init == "random"
        if fused and proposal.width:
            return self._verify_fused(ctx, p)
        return super().verify(ctx, proposal, p)

    def _verify_fused(self, ctx: DecodeContext, p: torch.Tensor) -> Verdict:
        """The default setting's whole pass (accept, correct, redraw, carry, draft) in few operations.

        The same draws from the same random stream as the step-by-step path (`super().verify`), so
        the outputs are bit-identical; what is saved is work done twice or thrown away there:
        min(1, p/q) serves both the acceptance and the maximal coupling's stay, the residual of
        every slot serves both the correction and the redraws, the fresh uniform drafts proactive
        drafting replaces anyway are not computed (only their random numbers are drawn), and every
        categorical draw of the pass runs as one inverse CDF.
        """
        drafts, gen = self.drafts, ctx.generator
        b, w = drafts.shape
        vocab = p.shape[-1]
        q = self.q if self._explicit else self.draft_q(ctx, p.dtype)
        p_slots = p[:, :w]
        keep = acceptance_probability(p_slots, drafts, q)
        accepted = first_false(torch.rand(drafts.shape, generator=gen, device=p.device, dtype=p.dtype) < keep)
        residual = residual_distribution(p_slots, q)
        rejected = (accepted < w).unsqueeze(-1)
        after = torch.where(rejected, take_per_row(residual, accepted.clamp(max=w - 1)), take_per_row(p, accepted))
        draws = [(after, uniforms(after, gen))]
        stay = torch.rand(drafts.shape, generator=gen, device=p.device, dtype=p.dtype) < keep
        draws += [(residual.reshape(-1, vocab), uniforms(residual, gen)), (p[:, w], uniforms(p[:, w:], gen))]
        allowed = ctx.allowed(w, start=accepted + 1)
        if allowed is None:  # the fresh drafts of the step-by-step path: only their random numbers
            torch.randint(ctx.vocab_size, (b, w), generator=gen, device=ctx.device)
        else:
            uniforms(allowed, gen)
        stale = accepted.unsqueeze(1) + torch.arange(1, w + 1, device=p.device) > w  # past the pass's reach
        proactive = bool(stale.any())
        if proactive:
            latest = restricted(p[:, -1:].expand(-1, w, -1), allowed)
            draws.append((latest.reshape(-1, vocab), uniforms(latest, gen)))
        drawn = sample_with(torch.cat([d for d, _ in draws]), torch.cat([u for _, u in draws]))
        redrawn = drawn[b : b + b * w].view(b, w)
        outputs = torch.cat([torch.where(stay, drafts, redrawn), drawn[b + b * w : 2 * b + b * w, None]], 1)
        self.drafts, _ = carry_over(outputs, accepted, w)
        self.q, _ = carry_over(p, accepted, w)
        if proactive:
            self.drafts = torch.where(stale, drawn[2 * b + b * w :].view(b, w), self.drafts)
            self.q = torch.where(stale.unsqueeze(-1), latest, self.q)
        self.given = torch.zeros_like(stale)
        self._explicit = True
        return Verdict(accepted, drawn[:b])

    def redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        stale = super().redraft(ctx, outputs, p, accepted, next_token)
        self._explicit = self.proactive  # given is all False from here on: stale is empty, or zeroed below
        if not self.proactive or not bool(stale.any()):
            return stale
        width = stale.shape[1]
        latest = p[:, -1:].expand(-1, width, -1)  # the furthest prediction of this pass
        latest = restricted(latest, ctx.allowed(width, start=accepted + 1))
        fresh = sample(latest, ctx.generator)
        self.drafts = torch.where(stale, fresh, self.drafts)
        self.q = torch.where(stale.unsqueeze(-1), latest, self.q)
        self.given = torch.zeros_like(stale)  # every slot's q is now explicit
        return stale
