"""Many fronts at once: draft slots placed anywhere in the span, each with its own attention.

A proposal that gives its slots `offsets` moves its decode onto this path for good; the
single-window path of core/loop.py is untouched (and pays nothing for it). The contract:

- slots: `Proposal.tokens` Long[B, W] at `Proposal.offsets` Long[B, W] (-1: an unused slot). A slot
  holds a draft, or re-feeds a committed token the cache does not hold yet (`ctx.done & ~ctx.cached`:
  the loop never feeds anything on its own here, so strategies feed what they committed). Feeding a
  cached token again is allowed (its output is needed once more); for the slots that see the new
  copy it replaces the cached one, which stays cached.
- attention: slot i sees every cached slot at a smaller offset, the slots of the same pass that
  `Proposal.attends` allows (default: every slot at a smaller offset) and itself. Seeing a slot at
  the same or a larger offset is refused: no token may see its own future.
- p: Float[B, 1 + W, V]. p[:, 1 + j] is slot j's next-token distribution (offset offsets[j] + 1);
  p[:, 0] is the prompt's (offset 0) at the first pass and all zeros afterwards.
- verdict: `Commits`, tokens for any subset of uncommitted offsets in any order, each naming the p
  entry it was chosen from (its offset must be that entry's) or -1 for a token the layout forces.
- honesty: a slot's context is *complete* when it sees exactly offsets 0..o-1, once each, holding
  the tokens committed there once the verdict is applied (so a chain of drafts verified in one
  pass is fine). A commit chosen from an incomplete context is refused unless the strategy is lossy
  and names its `approximation`; every pass is counted as on the single-window path.
- cache: a fed slot stays cached when its token is committed, it is the first slot of the pass for
  its offset, the offset was not cached yet, and its context is complete (any context under a
  declared approximation: its keys then carry it). Other slots become holes, masked out of every
  later pass; a trailing run of them is cropped, and holes are compacted as on the single window.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import attrs
import torch

from .backbone import Window
from .errors import BackboneError, ConfigError
from .sampling import target_probs
from .strategy import Proposal

if TYPE_CHECKING:
    from .loop import Decoder


def _long_matrix(name: str):
    def check(commits: "Commits", attribute, value) -> None:
        if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.dtype != torch.long:
            raise ConfigError(f"Commits.{name} must be a Long[B, K] tensor, got {getattr(value, 'dtype', type(value))}")
        if value.shape != commits.offsets.shape:
            raise ConfigError(f"Commits.{name} is {list(value.shape)}, Commits.offsets {list(commits.offsets.shape)}")

    return check


@attrs.frozen
class Commits:
    """What a pass of placed slots commits: `tokens[b, k]` at span offset `offsets[b, k]` (-1: none).

    `source[b, k]` is the p entry the token was chosen from (0: the prompt's, 1 + j: slot j's), so
    the loop can check its context; -1 marks a token the layout forces (one allowed token), which
    needs no distribution at all.
    """

    offsets: torch.Tensor = attrs.field(validator=_long_matrix("offsets"))
    tokens: torch.Tensor = attrs.field(validator=_long_matrix("tokens"))
    source: torch.Tensor = attrs.field(validator=_long_matrix("source"))

    @classmethod
    def none(cls, batch: int, device: torch.device | str = "cpu") -> "Commits":
        empty = torch.zeros(batch, 0, dtype=torch.long, device=device)
        return cls(empty, empty, empty)

    @classmethod
    def cat(cls, *parts: "Commits") -> "Commits":
        return cls(*(torch.cat([getattr(p, f) for p in parts], 1) for f in ("offsets", "tokens", "source")))


def _fail(strategy, message: str) -> ConfigError:
    return ConfigError(f"strategy {strategy.name!r} {message}")


class Fronts:
    """The loop's state for placed slots: where each cached span slot sits and what is committed."""

    def __init__(self, decoder: "Decoder"):
        ctx = decoder.ctx
        if ctx.step:
            raise _fail(decoder.strategy, "placed slots after single-window passes; a decode places them from its first pass or never")
        if not getattr(decoder.session, "supports_attention", False):
            raise ConfigError(f"backbone {decoder.backbone.name!r} cannot score placed slots (its session lacks Window.attention)")
        self.decoder = decoder
        batch, device = ctx.batch, ctx.device
        self.offsets = torch.zeros(batch, 0, dtype=torch.long, device=device)  # offset of every cached span slot
        self.valid = torch.zeros(batch, 0, dtype=torch.bool, device=device)  # ... and whether it may be seen
        ctx.done = torch.zeros(batch, ctx.length, dtype=torch.bool, device=device)
        ctx.cached = torch.zeros_like(ctx.done)

    # --- checks ---------------------------------------------------------------------------------
    def _slots(self, proposal: Proposal) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(used Bool[B, W], among Bool[B, W, W] attention within the pass, cached part Bool[B, W, S])."""
        from .loop import check_proposal  # the single window's check of the tokens

        ctx, strategy = self.decoder.ctx, self.decoder.strategy
        tokens, offs = proposal.tokens, proposal.offsets
        check_proposal(proposal, ctx.batch, ctx.vocab_size, strategy)
        if offs is None:
            raise _fail(strategy, "placed slots earlier in this decode; every later proposal must give offsets too")
        if offs.numel() and (int(offs.min()) < -1 or int(offs.max()) >= ctx.length):
            raise _fail(strategy, f"placed a slot outside the span [0, {ctx.length}) (-1 marks an unused slot)")
        used = offs >= 0
        at = offs.clamp(min=0)
        stale = used & ctx.done.gather(1, at) & (ctx.tokens.gather(1, at) != tokens)
        if bool(stale.any()):
            b, j = (int(i) for i in stale.nonzero()[0])
            raise _fail(strategy, f"fed token {int(tokens[b, j])} at committed offset {int(offs[b, j])} of row {b}, which holds {int(ctx.tokens[b, offs[b, j]])}")
        earlier = (offs[:, None, :] < offs[:, :, None]) & used[:, None, :] & used[:, :, None]
        if proposal.attends is None:
            among = earlier
        else:
            among = proposal.attends
            if bool((among & ~earlier).any()):
                b, i, j = (int(x) for x in (among & ~earlier).nonzero()[0])
                raise _fail(strategy, f"let slot {i} (offset {int(offs[b, i])}) attend to slot {j} (offset {int(offs[b, j])}) of row {b}; a slot sees only used slots at smaller offsets")
        among = among | torch.eye(offs.shape[1], dtype=torch.bool, device=offs.device)
        cached = self.valid[:, None, :] & (self.offsets[:, None, :] < offs[:, :, None]) & used[:, :, None]
        refed = used & ctx.cached.gather(1, at)
        if bool(refed.any()):  # a committed token fed again replaces its cached copy for the slots seeing it
            b, w = offs.shape
            seen = torch.zeros(b, w, ctx.length + 1, dtype=torch.long, device=offs.device)
            seen.scatter_add_(2, torch.where(refed, offs, ctx.length)[:, None, :].expand(b, w, w), among.long())
            cached &= seen.gather(2, self.offsets.clamp(0, ctx.length - 1)[:, None, :].expand_as(cached)) == 0
        return used, among, cached

    def _check_commits(self, commits, proposal: Proposal, first: bool) -> torch.Tensor:
        """Bool[B, K] used entries of a valid `Commits`; a ConfigError names the first violation."""
        ctx, strategy = self.decoder.ctx, self.decoder.strategy
        if not isinstance(commits, Commits):
            raise _fail(strategy, f"answered placed slots with a {type(commits).__name__}; expected core.fronts.Commits")
        off, tok, src = commits.offsets, commits.tokens, commits.source
        width = proposal.tokens.shape[1]
        if off.shape[0] != ctx.batch:
            raise _fail(strategy, f"committed for {off.shape[0]} rows of a batch of {ctx.batch}")
        use = off >= 0
        if not bool(use.any()):
            return use
        problems = [
            (off >= ctx.length, f"committed past the span's {ctx.length} offsets"),
            (use & ((tok < 0) | (tok >= ctx.vocab_size)), f"committed token ids outside [0, {ctx.vocab_size})"),
            (use & ((src < -1) | (src > width)), f"named a source outside -1..{width}"),
            (use & ctx.done.gather(1, off.clamp(min=0)), "committed an offset that was already committed"),
            (use & (src == 0) & (not first), "committed from p[:, 0], which only the first pass fills"),
        ]
        slot = (src - 1).clamp(min=0, max=max(width - 1, 0))
        if width:
            src_off = proposal.offsets.gather(1, slot)
            problems.append((use & (src >= 1) & ((src_off < 0) | (src_off + 1 != off)),
                             "committed a token at an offset other than its source slot's offset + 1"))
        problems.append((use & (src == 0) & (off != 0), "committed from the prompt's p at an offset other than 0"))
        for bad, message in problems:
            if bool(bad.any()):
                b, k = (int(i) for i in bad.nonzero()[0])
                raise _fail(strategy, f"{message} (row {b}, entry {k}: offset {int(off[b, k])}, source {int(src[b, k])})")
        counts = torch.zeros(ctx.batch, ctx.length + 1, dtype=torch.long, device=off.device)
        counts.scatter_add_(1, torch.where(use, off, ctx.length), torch.ones_like(off))
        if int(counts[:, : ctx.length].max()) > 1:
            b, o = (int(i) for i in (counts[:, : ctx.length] > 1).nonzero()[0])
            raise _fail(strategy, f"committed offset {o} of row {b} twice in one pass")
        allowed = ctx.allowed_at(off.clamp(min=0))
        if allowed is not None:
            ok = allowed.gather(-1, tok.clamp(0, ctx.vocab_size - 1).unsqueeze(-1)).squeeze(-1)
            forced = allowed.sum(-1) == 1
            for bad, message in ((use & ~ok, "committed a token the layout forbids"),
                                 (use & (src == -1) & ~forced, "committed as forced (source -1) a token the layout does not force")):
                if bool(bad.any()):
                    b, k = (int(i) for i in bad.nonzero()[0])
                    raise _fail(strategy, f"{message} (row {b}, offset {int(off[b, k])}, token {int(tok[b, k])})")
        elif bool((use & (src == -1)).any()):
            raise _fail(strategy, "committed as forced (source -1) a token, but this layout forces none")
        return use

    def _complete(self, proposal: Proposal, used, among, cached) -> torch.Tensor:
        """Bool[B, W]: slot j's token is committed and it saw exactly offsets 0..o-1 as committed."""
        ctx = self.decoder.ctx
        offs, tokens = proposal.offsets, proposal.tokens
        at = offs.clamp(min=0)
        final = used & ctx.done.gather(1, at) & (ctx.tokens.gather(1, at) == tokens)
        sees_final = ~(among & ~final[:, None, :]).any(-1)
        batch, width = tokens.shape
        seen = torch.zeros(batch, width, ctx.length, device=offs.device)
        seen.scatter_add_(2, self.offsets.clamp(0, ctx.length - 1)[:, None, :].expand_as(cached), cached.float())
        seen.scatter_add_(2, at[:, None, :].expand_as(among), among.float())
        cover = (seen <= 1).all(-1) & (seen.sum(-1) == (offs + 1).float())
        return final & sees_final & cover

    # --- one pass -------------------------------------------------------------------------------
    def step(self, proposal: Proposal, start: float) -> None:
        d = self.decoder
        ctx, strategy = d.ctx, d.strategy
        used, among, cached = self._slots(proposal)
        tokens, offs = proposal.tokens, proposal.offsets
        batch, width = tokens.shape
        first = ctx.step == 0
        attention = torch.cat([cached, among], 2)
        key_valid = torch.cat([self.valid, used], 1)

        # score: exactly one forward pass, counted here
        t0 = time.perf_counter()
        running = ctx.committed < ctx.length
        active = None if bool(running.all()) else running
        window = Window(tokens, offs, key_valid, first, proposal.noisy, active, attention)
        scores = d.session.forward(window)
        d.forward_seconds.append(time.perf_counter() - t0)
        d.widths.append(width)
        expected = (batch, width + first, ctx.vocab_size)
        if tuple(scores.cond.shape) != expected:
            raise BackboneError(f"backbone {d.backbone.name!r} returned logits {tuple(scores.cond.shape)}, expected {expected}")

        # process: slot j's distribution is for offset offsets[j] + 1; p[:, 0] the prompt's
        targets = offs + 1
        if first:
            targets = torch.cat([offs.new_zeros(batch, 1), targets], 1)
        p = target_probs(scores, ctx.allowed_at(targets), d.sampling, step=ctx.step)
        if not first:
            p = torch.cat([p.new_zeros(batch, 1, p.shape[-1]), p], 1)

        # verify, check, commit
        commits = strategy.verify(ctx, proposal, p)
        use = self._check_commits(commits, proposal, first)
        rows = torch.arange(batch, device=ctx.device).unsqueeze(1).expand_as(commits.offsets)
        was_cached = ctx.cached.gather(1, offs.clamp(min=0))
        ctx.tokens[rows[use], commits.offsets[use]] = commits.tokens[use]
        ctx.done[rows[use], commits.offsets[use]] = True
        approximate = not strategy.lossless and bool(strategy.approximation)
        complete = None if approximate else self._complete(proposal, used, among, cached)
        if not approximate and width:
            src = commits.source
            from_slot = use & (src >= 1)
            ok = complete.gather(1, (src - 1).clamp(0, width - 1))
            bad = from_slot & ~ok
            if bool(bad.any()):
                b, k = (int(i) for i in bad.nonzero()[0])
                kind = "a lossless strategy may not" if strategy.lossless else "a lossy one must name its `approximation`"
                raise _fail(strategy, f"committed offset {int(commits.offsets[b, k])} of row {b} from a distribution whose context was not all committed; {kind}")

        # cache: keep each committed offset's first slot if its context allows; the rest are holes
        keepable = used & ~was_cached & (complete if not approximate else self._final(proposal, used))
        key = torch.where(keepable, offs, ctx.length)
        slot = torch.arange(width, device=ctx.device).expand(batch, -1)
        first_slot = torch.full((batch, ctx.length + 1), width, dtype=torch.long, device=ctx.device)
        first_slot.scatter_reduce_(1, key, slot, reduce="amin")
        keep = keepable & (first_slot.gather(1, key) == slot)
        ctx.cached[torch.arange(batch, device=ctx.device).unsqueeze(1).expand_as(offs)[keep], offs[keep]] = True
        kept = int(keep.any(0).nonzero().max()) + 1 if bool(keep.any()) else 0
        if width - kept:
            d.session.crop(width - kept)
        self.offsets = torch.cat([self.offsets, offs[:, :kept]], 1)
        self.valid = torch.cat([self.valid, keep[:, :kept]], 1)
        self._compact_if_sparse()

        take = use.sum(1)
        ctx.committed = ctx.committed + take
        d.remaining = (ctx.length - ctx.committed).tolist()
        ctx.longest_remaining = max(d.remaining)
        ctx.step += 1
        d.counts.append(take)
        d.step_seconds.append(time.perf_counter() - start)

    def _final(self, proposal: Proposal, used: torch.Tensor) -> torch.Tensor:
        ctx = self.decoder.ctx
        at = proposal.offsets.clamp(min=0)
        return used & ctx.done.gather(1, at) & (ctx.tokens.gather(1, at) == proposal.tokens)

    def _compact_if_sparse(self) -> None:
        from .loop import compact_holes  # the single window's compaction, holes and all

        compacted = compact_holes(self.decoder.session, self.valid, self.valid.sum(1).tolist())
        if compacted is not None:
            order, self.valid = compacted
            self.offsets = self.offsets.gather(1, order)


def pending(ctx, also: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets Long[B, P], tokens Long[B, P]): committed tokens the cache lacks, by offset (-1 pads).

    `also` (Bool[B, length]) adds committed offsets to feed again although cached (a strategy that
    needs their output once more); a re-fed slot hides its cached copy from the queries seeing it.
    """
    waiting = ctx.done & ~ctx.cached
    if also is not None:
        waiting = waiting | (also & ctx.done)
    count = waiting.sum(1)
    width = int(count.max()) if count.numel() else 0
    order = torch.sort((~waiting).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    offs = torch.where(torch.arange(width, device=order.device) < count.unsqueeze(1), order, -1)
    return offs, ctx.tokens.gather(1, offs.clamp(min=0))
