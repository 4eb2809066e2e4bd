"""Draft bookkeeping shared by iterative strategies: initialising and carrying drafts over.

After a pass that kept `accepted` drafts plus one token, the next window starts `accepted + 1`
slots further on. The pass's own outputs for those later slots become the new drafts (the Jacobi
update); slots beyond the pass's reach are filled fresh.
"""

from __future__ import annotations

import torch

from ..core.strategy import DecodeContext, one_of
from ..core.verify import sample

DRAFT_INITS = ("random", "repeat")


check_init = one_of(DRAFT_INITS)


def random_tokens(ctx: DecodeContext, offsets: torch.Tensor) -> torch.Tensor:
    """Long[B, k]: uniform draws over the tokens the layout allows at each offset."""
    allowed = ctx.allowed_at(offsets)
    if allowed is None:
        return torch.randint(ctx.vocab_size, offsets.shape, generator=ctx.generator, device=ctx.device)
    return sample(allowed.float(), ctx.generator)


def restricted(probs: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """`probs` [..., V] restricted to the `allowed` tokens (Bool[..., V] or None: all) and normalised;
    uniform over the allowed tokens where no mass is left. A draft distribution that must stay
    explicit (it is the q of the drafts drawn from it) and inside the layout."""
    if allowed is not None:
        probs = probs * allowed
    mass = probs.sum(-1, keepdim=True)
    fallback = torch.ones_like(probs) if allowed is None else allowed.to(probs.dtype)
    fallback = fallback / fallback.sum(-1, keepdim=True).clamp_min(1)
    return torch.where(mass > 0, probs / mass.clamp_min(torch.finfo(probs.dtype).tiny), fallback)


def fresh_tokens(ctx: DecodeContext, offsets: torch.Tensor, left: torch.Tensor | None, init: str) -> torch.Tensor:
    """Long[B, k] initial drafts at `offsets`; `left` is Long[B], the token just before offsets[:, 0]
    (None when there is none yet).

    "random" draws uniformly from the allowed tokens; "repeat" copies the token to the left
    (falling back to random where the layout forbids it, e.g. at an end-of-line slot).
    """
    drawn = random_tokens(ctx, offsets)
    if init == "random" or left is None:
        return drawn
    repeated = left.unsqueeze(1).expand_as(offsets)
    allowed = ctx.allowed_at(offsets)
    if allowed is None:
        return repeated
    ok = allowed.gather(-1, repeated.unsqueeze(-1)).squeeze(-1)
    return torch.where(ok, repeated, drawn)


def auto_or(window: int | str, value: int) -> int:
    """`window`, or `value` when the window is chosen automatically."""
    return value if window == "auto" else window


def narrowed(width: int, *states: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Per-slot states [B, W, ...] cut to their first `width` slots (see `DecodeContext.useful_width`)."""
    return [None if state is None else state[:, :width] for state in states]


def carry_over(values: torch.Tensor, accepted: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each row of `values` [B, W+1, ...] left by accepted+1 into a window of `width` slots.

    Returns (shifted [B, width, ...], stale Bool[B, width]); stale slots lie past the pass's reach
    and hold copies of the last slot, to be overwritten with fresh drafts.
    """
    source = accepted.unsqueeze(1) + 1 + torch.arange(width, device=values.device)
    stale = source >= values.shape[1]
    index = source.clamp(max=values.shape[1] - 1)
    if values.dim() > 2:
        index = index.view(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    return values.gather(1, index), stale


#: how redraws of unaccepted slots relate across passes: "independent" (fresh draws), "gumbel"
#: (`CoupledDraws`: fixed noise per position) or "maximal" (`core.verify.maximal_redraw`: the previous
#: draft stays with probability 1 - TV(p, q)); every one keeps verification exact
COUPLINGS = ("independent", "gumbel", "maximal")


check_coupling = one_of(COUPLINGS)


class CoupledDraws:
    """Redraws that stay put when p barely changes: Gumbel-max with noise fixed per span position.

    Each position in reach of the window (W drafts + the bonus slot) keeps one Gumbel vector until
    it is committed; its draft is argmax(log p + G). Marginally that is a draw from p, and G at a
    position is independent of every p computed for it (p there depends only on earlier inputs), so
    speculative verification stays exact; but unlike independent redraws, a draft changes only when
    p moves enough to change the arg-max, so drafts stabilise across passes.
    """

    def __init__(self, batch: int, width: int, vocab: int, generator: torch.Generator, device: torch.device):
        self.generator, self.device = generator, device
        self.noise = self._fresh((batch, width + 1, vocab))

    def _fresh(self, shape) -> torch.Tensor:
        u = torch.rand(shape, generator=self.generator, device=self.device).clamp_(min=torch.finfo(torch.float32).tiny)
        return -torch.log(-torch.log(u))

    def fit(self, width: int) -> None:
        """Noise for exactly `width` draft slots and the bonus slot after them: the first slots keep
        theirs; positions new to the window get fresh noise (an automatic window grew)."""
        batch, have, vocab = self.noise.shape
        if have > width + 1:
            self.noise = self.noise[:, : width + 1]
        elif have < width + 1:
            self.noise = torch.cat([self.noise, self._fresh((batch, width + 1 - have, vocab))], 1)

    def draw(self, p: torch.Tensor) -> torch.Tensor:
        """Long[B, W+1]: the coupled draw of every slot of p [B, W+1, V]."""
        return (p.log() + self.noise).argmax(-1)

    def advance(self, accepted: torch.Tensor) -> None:
        """Follow the window past accepted+1 committed positions; new positions get new noise."""
        kept, stale = carry_over(self.noise, accepted, self.noise.shape[1])
        self.noise = torch.where(stale.unsqueeze(-1), self._fresh(kept.shape), kept)
