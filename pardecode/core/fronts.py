"""Placed slots, as strategies see them: draft slots anywhere in the span, each with its own attention.

A proposal that gives its slots `offsets` moves its decode onto the placed-slot pass for good
(`core.passes.placed_slots` checks the contract and keeps the cache); the single-window pass is
untouched (and pays nothing for it). The contract:

- slots: `Proposal.tokens` Long[B, W] at `Proposal.offsets` Long[B, W] (-1: an unused slot). A slot
  holds a draft, or re-feeds a committed token the cache does not hold yet (`ctx.done & ~ctx.cached`:
  the loop never feeds anything on its own here, so strategies feed what they committed: `pending`).
  Feeding a cached token again is allowed (its output is needed once more); for the slots that see
  the new copy it replaces the cached one, which stays cached.
- attention: slot i sees every cached slot at a smaller offset, the slots of the same pass that
  `Proposal.attends` allows (default: every slot at a smaller offset) and itself. Seeing a slot at
  the same or a larger offset is refused: no token may see its own future.
- p: Float[B, 1 + W, V]. p[:, 1 + j] is slot j's next-token distribution (offset offsets[j] + 1);
  p[:, 0] is the prompt's (offset 0) at the first pass and all zeros afterwards.
- answer: `Commits`, tokens for any subset of uncommitted offsets in any order, each naming the p
  entry it was chosen from (its offset must be that entry's) or -1 for a token the layout forces.
- honesty: a slot's context is *complete* when it sees exactly offsets 0..o-1, once each, holding
  the tokens committed there once the answer is applied (so a chain of drafts verified in one pass
  is fine). A commit chosen from an incomplete context is refused unless the strategy is lossy and
  names its `approximation`; every pass is counted as on the single-window path.
- cache: a fed slot stays cached when its token is committed, it is the first slot of the pass for
  its offset, the offset was not cached yet, and its context is complete (any context under a
  declared approximation: its keys then carry it). Other slots become holes, masked out of every
  later pass; a trailing run of them is cropped, and holes are compacted as on the single window.
"""

from __future__ import annotations

import torch

from .strategy import Commits, DecodeContext

__all__ = ["Commits", "front_columns", "pending"]


def front_columns(marked: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """Long[B, K]: the columns of the True entries of Bool[B, N], in order, moved to the front and
    padded with -1; K is the largest count of any row (one host transfer, for the shape, unless the
    caller passes it as `width`).

    A running count gives each marked entry its place, so no sort over N is needed; unmarked
    entries all land in a spare column K, which is dropped.
    """
    batch, n = marked.shape
    if width is None:
        count = marked.sum(1)
        width = int(count.max()) if count.numel() else 0
    place = torch.where(marked, marked.cumsum(1) - 1, width)
    out = torch.full((batch, width + 1), -1, dtype=torch.long, device=marked.device)
    out.scatter_(1, place, torch.arange(n, device=marked.device).expand(batch, -1))
    return out[:, :width]


def pending(ctx: DecodeContext, also: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets Long[B, P], tokens Long[B, P]): committed tokens the cache lacks, by offset (-1 pads).

    `also` (Bool[B, length]) adds committed offsets to feed again although cached (a strategy that
    needs their output once more); a re-fed slot hides its cached copy from the queries seeing it.
    """
    waiting = ctx.done & ~ctx.cached
    if also is not None:
        waiting = waiting | (also & ctx.done)
    offsets = front_columns(waiting)
    return offsets, ctx.tokens.gather(1, offsets.clamp(min=0))
