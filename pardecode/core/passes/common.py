"""What both pass kinds share: proposal checks, the layout's allowed-token table, hole compaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..backbone import Session
from ..errors import BackboneError, ConfigError
from ..layout import TokenLayout
from ..strategy import Proposal, Strategy

HOLE_FRACTION = 0.25  # compact the span cache once holes exceed this fraction of its slots


def check_proposal(proposal: Proposal, batch: int, vocab: int, strategy: Strategy) -> None:
    """Refuse drafts of the wrong shape or dtype, or token ids outside the vocabulary."""
    tokens = proposal.tokens
    if tokens.dim() != 2 or tokens.shape[0] != batch or tokens.dtype != torch.long:
        raise ConfigError(
            f"strategy {strategy.name!r} proposed {tuple(tokens.shape)} {tokens.dtype}; expected Long[{batch}, W]"
        )
    if tokens.numel():
        low, high = torch.stack(torch.aminmax(tokens)).tolist()
        if low < 0 or high >= vocab:
            raise ConfigError(f"strategy {strategy.name!r} proposed token ids outside [0, {vocab})")


def allowed_lookup(layout: TokenLayout, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """The layout's allowed-token masks, computed once per decode for every span offset.

    Each pass then indexes a table instead of rebuilding masks. Offsets past the span's end (drafts
    of rows near their end, never committed) share the mask of the first offset past it. A layout
    that allows no token somewhere is refused here, once, instead of at every pass.
    """
    table = layout.allowed(torch.arange(layout.length + 1, device=device))
    if table is None:
        return lambda offsets: None
    if not bool(table.any(-1).all()):
        raise BackboneError("the layout allows no token at some position; check the adapter's layout")
    last = layout.length
    return lambda offsets: table[offsets.clamp(max=last)]


def compact_holes(
    session: Session, valid: torch.Tensor, counts: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Have `session` drop the holes of its span cache once they exceed `HOLE_FRACTION` of its slots.

    `valid` is Bool[B, S] (which cached span slots each row may see), `counts` its per-row sums.
    Returns (order Long[B, S']: row b's new slot j was its slot order[b, j], the new `valid`), or
    None when nothing moved (few holes, or a session that cannot compact).
    """
    slots, longest = valid.shape[1], max(counts)
    if slots - longest <= HOLE_FRACTION * slots:
        return None
    order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices[:, :longest]
    if not session.compact(order):
        return None
    per_row = torch.tensor(list(counts), device=valid.device)
    return order, torch.arange(longest, device=valid.device) < per_row.unsqueeze(1)
