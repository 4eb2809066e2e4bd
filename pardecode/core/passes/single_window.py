"""The single-window pass: W drafts right after each row's committed prefix.

Inputs are the pending token (the newest committed one, not cached yet) and the W drafts; at the
first pass only the drafts (the session feeds its prompt before them). The strategy answers with a
`Verdict`: row b keeps its first `accepted[b]` drafts and then `next_token[b]`, capped at its
remaining length (capping only stops verification early, so the output stays exact). Rows advance
by their own accepted lengths: inputs a row did not keep stay in the shared cache as holes, masked
out of every later pass and compacted away once they pile up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..backbone import NoisyInputs, Scores, Session, Window
from ..errors import ConfigError
from ..sampling import target_probs
from ..strategy import Commits, DecodeContext, Proposal, Strategy, Verdict
from . import Committed, PassKind, Prepared
from .common import check_proposal, compact_holes


class SingleWindow(PassKind):
    """Owns which cached span slots each row may see (`valid`); the cache holds them in pass order."""

    def __init__(self, ctx: DecodeContext, session: Session, strategy: Strategy):
        self.ctx, self.session, self.strategy = ctx, session, strategy
        self.rows = torch.arange(ctx.batch, device=ctx.device)
        self.valid = torch.zeros(ctx.batch, 0, dtype=torch.bool, device=ctx.device)  # Bool[B, cached slots]
        self.valid_counts = [0] * ctx.batch  # self.valid.sum(1), mirrored on the host

    def prepare(self, proposal: Proposal, active: torch.Tensor | None) -> Prepared:
        ctx = self.ctx
        check_proposal(proposal, ctx.batch, ctx.vocab_size, self.strategy)
        first, noisy = ctx.step == 0, proposal.noisy
        if first:
            inputs, offsets = proposal.tokens, ctx.offsets(proposal.width)
        else:
            pending = ctx.tokens.gather(1, (ctx.committed - 1).unsqueeze(1))
            inputs, offsets = torch.cat([pending, proposal.tokens], 1), ctx.offsets(proposal.width + 1, start=-1)
            if noisy is not None:  # the pending token is always fed clean (level 0)
                noisy = NoisyInputs(
                    embeds=torch.cat([torch.zeros_like(noisy.embeds[:, :1]), noisy.embeds], 1),
                    level=torch.cat([torch.zeros_like(noisy.level[:, :1]), noisy.level], 1),
                )
        key_valid = torch.cat([self.valid, torch.ones_like(inputs, dtype=torch.bool)], 1)
        return Prepared(proposal, Window(inputs, offsets, key_valid, first, noisy, active))

    def targets(self, prepared: Prepared, scores: Scores) -> torch.Tensor:
        ctx = self.ctx
        return target_probs(scores, ctx.allowed(prepared.proposal.width + 1), ctx.sampling, step=ctx.step)

    def commit(self, prepared: Prepared, answer: Verdict | Commits, remaining: Sequence[int]) -> Committed:
        ctx, proposal = self.ctx, prepared.proposal
        if not isinstance(answer, Verdict):
            raise ConfigError(
                f"strategy {self.strategy.name!r} answered a single window with a {type(answer).__name__}; "
                "expected a Verdict (Commits answer placed slots only)"
            )
        width = proposal.width
        # drafts[:accepted] then next_token, capped at each row's remaining length. The whole
        # window is written; slots past `take` lie beyond `committed` and are overwritten later.
        take = torch.minimum(answer.accepted + 1, ctx.length - ctx.committed)
        accepted, taken = torch.stack([answer.accepted, take]).tolist()
        if min(accepted) < 0 or max(accepted) > width:
            raise ConfigError(f"strategy {self.strategy.name!r} accepted {accepted} drafts of a window of {width}")
        candidates = torch.cat([proposal.tokens, answer.next_token.unsqueeze(1)], 1)
        candidates[self.rows, answer.accepted] = answer.next_token
        if ctx.length - min(remaining) + width + 1 > ctx.tokens.shape[1]:  # a window wider than the span
            ctx.tokens = torch.cat([ctx.tokens, ctx.tokens.new_zeros(ctx.batch, width + 1)], 1)
        slots = ctx.committed.unsqueeze(1) + torch.arange(width + 1, device=ctx.device)
        ctx.tokens.scatter_(1, slots, candidates)
        self._keep_committed_inputs(prepared.window, take, taken)
        return Committed(take, taken, accepted, answer.diagnostics)

    def _keep_committed_inputs(self, window: Window, take: torch.Tensor, taken: list[int]) -> None:
        """Keep the cache slots of inputs that are now committed; the newest token stays pending.

        `take` (Long[B]) and `taken` (its host copy) count each row's committed tokens: the pass fed
        the pending token first (except the first pass), so a row keeps that many inputs (one fewer
        at the first pass)."""
        fed = window.tokens.shape[1]
        keep = [max(t - 1, 0) for t in taken] if window.first else taken
        kept = max(keep)
        if fed - kept:
            self.session.crop(fed - kept)
        per_row = (take - 1).clamp(min=0) if window.first else take
        new_valid = torch.arange(kept, device=self.ctx.device) < per_row.unsqueeze(1)
        self.valid = torch.cat([self.valid, new_valid], 1)
        self.valid_counts = [c + k for c, k in zip(self.valid_counts, keep)]
        compacted = compact_holes(self.session, self.valid, self.valid_counts)
        if compacted is not None:
            _, self.valid = compacted
