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
from ..core.verify import sample
from .drafting import check_coupling, restricted
from .sjd import SJD


@attrs.define
class SJDPAC(SJD):
    """SJD with adaptive continuation (maximal coupling of carried drafts) and proactive drafting."""

    name = "sjd_pac"
    claim = Claim.exact()

    coupling: str = attrs.field(default="maximal", validator=check_coupling)
    proactive: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def redraft(self, ctx, outputs, p, accepted, next_token) -> torch.Tensor:
        stale = super().redraft(ctx, outputs, p, accepted, next_token)
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
