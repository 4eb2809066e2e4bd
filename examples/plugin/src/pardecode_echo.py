"""An example third-party strategy: draft W copies of the last committed token, verify losslessly.

Installed with `pip install examples/plugin`, it appears in `pardecode list` as `echo`.
"""

import attrs
import torch

import pardecode
from pardecode.core.verify import speculative_accept


@attrs.define
class Echo(pardecode.Strategy):
    """Drafts repeat the last committed token; speculative acceptance keeps the output exact."""

    name = "echo"
    window: int = 4  # options are attrs fields: `pardecode list` shows them

    def propose(self, ctx: pardecode.DecodeContext) -> pardecode.Proposal:
        width = ctx.useful_width(self.window)  # no drafts past every row's end
        rows = torch.arange(ctx.batch, device=ctx.device)
        last = ctx.tokens[rows, (ctx.committed - 1).clamp(min=0)]
        drafts = last.unsqueeze(1).expand(-1, width).contiguous()  # Long[B, W]
        allowed = ctx.allowed(width)
        if allowed is not None:  # keep the layout: forbidden copies become any allowed token
            ok = allowed.gather(-1, drafts.unsqueeze(-1)).squeeze(-1)
            drafts = torch.where(ok, drafts, allowed.float().argmax(-1))
        return pardecode.Proposal(drafts)

    def verify(self, ctx, proposal, p) -> pardecode.Verdict:
        # p: Float[B, W+1, V]; the drafts are given tokens (q one-hot), so q is None
        return pardecode.Verdict(*speculative_accept(p, proposal.tokens, None, ctx.generator))


@pardecode.hookimpl
def pardecode_register_strategies(register):
    register("echo", Echo, Echo.__doc__)
