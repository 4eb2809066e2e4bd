"""The placed-slot pass: draft slots anywhere in the span, each with its own attention.

A proposal that gives its slots `offsets` moves its decode onto this kind of pass for good (see
`core.fronts` for the contract strategies see). This module checks that contract and keeps the
cache honest:

- attention: slot i sees every cached slot at a smaller offset, the slots of the same pass that
  `Proposal.attends` allows (default: every slot at a smaller offset) and itself; a committed
  token fed again hides its cached copy from whoever sees the new one.
- honesty: a slot's context is *complete* when it sees exactly offsets 0..o-1, once each, holding
  the tokens committed there once the answer is applied. A commit drawn from an incomplete context
  is refused unless the strategy is lossy and names its `approximation`.
- cache: a fed slot stays cached when its token is committed, it is the first slot of the pass for
  its offset, the offset was not cached yet, and its context is complete (any context under a
  declared approximation). Other slots become holes; a trailing run of them is cropped.

A pass costs the host two transfers: one in `prepare` (is the proposal valid; does a slot re-feed a
cached token or share its offset with another) and one in `commit` (is the answer valid; per row
the tokens taken and slots kept). Each folds every check of its side into one reduction; only when
one fails are the checks run again one by one, in a fixed order, to name the first violation
(`_explain_proposal`, `_explain_commits`).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from ..backbone import Scores, Session, Window
from ..errors import ConfigError
from ..sampling import target_probs
from ..strategy import Commits, DecodeContext, Proposal, Strategy, Verdict
from . import Committed, PassKind, Prepared
from .common import check_proposal, compact_holes

NO_OFFSET = -4  # what an invalid or unused source predicts in the commit check: no span offset
FORCED_SOURCE = -3  # what a forced token's source (-1) looks up there: no span offset either


def _refusal(strategy: Strategy, message: str) -> ConfigError:
    return ConfigError(f"strategy {strategy.name!r} {message}")


@attrs.frozen
class Slots:
    """A prepared placed-slot pass: where each slot sits and what it sees."""

    used: torch.Tensor  # Bool[B, W]: the slot is used (offset >= 0)
    at: torch.Tensor  # Long[B, W]: each slot's offset, `length` (the spare column) if unused
    was_cached: torch.Tensor  # Bool[B, W]: the slot re-feeds an offset the cache holds
    attention: torch.Tensor  # Bool[B, W, S + W] over the cached slots and this pass's
    shared_offsets: bool  # two used slots of a row share an offset


class PlacedSlots(PassKind):
    """Owns where each cached span slot sits (`offsets`, `valid`) and what is committed and cached."""

    def __init__(self, ctx: DecodeContext, session: Session, strategy: Strategy, backbone_name: str):
        if ctx.step:
            raise _refusal(
                strategy, "placed slots after single-window passes; a decode places them from its first pass or never"
            )
        if not getattr(session, "supports_attention", False):
            raise ConfigError(
                f"backbone {backbone_name!r} cannot score placed slots (its session lacks Window.attention)"
            )
        self.ctx, self.session, self.strategy = ctx, session, strategy
        batch, length, device = ctx.batch, ctx.length, ctx.device
        # every cached span slot: its offset (`length` for a hole: no slot ever sees it) and validity
        self.offsets = torch.zeros(batch, 0, dtype=torch.long, device=device)
        self.valid = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        self.valid_counts = [0] * batch  # self.valid.sum(1), mirrored
        # done and cached keep one spare column (offset `length`) that scatters of unused entries hit
        self._done = torch.zeros(batch, length + 1, dtype=torch.bool, device=device)
        self._cached = torch.zeros_like(self._done)
        ctx.done, ctx.cached = self._done[:, :length], self._cached[:, :length]
        self._legal = self._legality_table()
        self._identity: dict[int, torch.Tensor] = {}  # Bool[W, W] eye by width: a slot sees itself
        self._source_heads: dict[bool, torch.Tensor] = {}  # see `_source_offsets`, by first pass
        self._no_prompt: torch.Tensor | None = None  # Float[B, 1, V] zeros: p[:, 0] after the first pass
        self._ranks: dict[int, torch.Tensor] = {}  # Long[W]: 1..W by width, a slot's index + 1

    def _legality_table(self) -> torch.Tensor:
        """What the layout makes of token t at offset o, at flat index o * (V + 2) + t.

        0 forbidden, 1 allowed, 2 forced (the only one allowed). Columns V and V + 1 (read by t = V
        and, from the next offset's row, t = -1) are 0: an id outside the vocabulary is forbidden.
        Row `length` (the spare offset) allows every id.
        """
        ctx = self.ctx
        table = ctx.allowed_at(torch.arange(ctx.length, device=ctx.device))
        legal = torch.zeros(ctx.length + 1, ctx.vocab_size + 2, dtype=torch.uint8, device=ctx.device)
        legal[:, : ctx.vocab_size] = 1
        if table is not None:
            legal[: ctx.length, : ctx.vocab_size] = table.to(torch.uint8) * (1 + (table.sum(-1, keepdim=True) == 1))
        return legal.reshape(-1)

    def _eye(self, width: int) -> torch.Tensor:
        if width not in self._identity:
            self._identity[width] = torch.eye(width, dtype=torch.bool, device=self.ctx.device)
        return self._identity[width]

    def _slot_ranks(self, width: int) -> torch.Tensor:
        if width not in self._ranks:
            self._ranks[width] = torch.arange(1, width + 1, device=self.ctx.device)
        return self._ranks[width]

    def _source_offsets(self, first: bool, used: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Long[B, W + 4]: at index source + 2, the offset a commit from that source must sit at.

        Index 0 stands for every source below -1 and index W + 3 for every source above W (both
        NO_OFFSET: they match no commit), index 1 for a forced token (FORCED_SOURCE, a value no
        offset equals: the check expects the lookup to miss exactly for forced tokens), index 2
        for the prompt's p (offset 0, at the first pass only), then slot j's offsets[j] + 1 where
        the slot is used.
        """
        if first not in self._source_heads:
            ctx = self.ctx
            head = [NO_OFFSET, FORCED_SOURCE, 0 if first else NO_OFFSET]
            self._source_heads[first] = torch.tensor(head, device=ctx.device).expand(ctx.batch, 3)
        head = self._source_heads[first]
        return torch.cat([head, torch.where(used, targets, NO_OFFSET), head[:, :1]], 1)

    # --- prepare: check the slots, build their attention -------------------------------------------
    def prepare(self, proposal: Proposal, active: torch.Tensor | None) -> Prepared:
        slots = self._slots(proposal)
        key_valid = torch.cat([self.valid, slots.used], 1)
        window = Window(
            proposal.tokens, proposal.offsets, key_valid, self.ctx.step == 0, proposal.noisy, active, slots.attention
        )
        return Prepared(proposal, window, slots)

    def _slots(self, proposal: Proposal) -> Slots:
        ctx, strategy = self.ctx, self.strategy
        tokens, offs = proposal.tokens, proposal.offsets
        if offs is None or tokens.dim() != 2 or tokens.shape[0] != ctx.batch or tokens.dtype != torch.long:
            check_proposal(proposal, ctx.batch, ctx.vocab_size, strategy)  # refuses a malformed tensor
            raise _refusal(strategy, "placed slots earlier in this decode; every later proposal must give offsets too")
        length, width = ctx.length, tokens.shape[1]
        used = offs >= 0
        at = torch.where(used, offs, length).clamp_(max=length)  # unused: the spare column, never done
        was_cached = self._cached.gather(1, at)
        query = offs[:, :, None]
        earlier = (offs[:, None, :] < query) & used[:, None, :]
        among = earlier if proposal.attends is None else proposal.attends
        shared_offsets = refed = False
        if width:
            stale = self._done.gather(1, at) & (ctx.tokens.gather(1, at) != tokens)
            parts = [*torch.aminmax(tokens), *torch.aminmax(offs), stale.any(), was_cached.any(), earlier.sum()]
            if proposal.attends is not None:
                parts.append((among & ~earlier).any())
            counts = used.sum(1)
            low, high, lowest, highest, stale_any, refed, pairs, *rest = torch.cat(
                [torch.stack(parts), counts]
            ).tolist()
            attends_beyond, counts = rest[: len(parts) - 7], rest[len(parts) - 7 :]
            if (
                low < 0
                or high >= ctx.vocab_size
                or lowest < -1
                or highest >= length
                or stale_any
                or any(attends_beyond)
            ):
                self._explain_proposal(proposal)
            # used slots at distinct offsets are ordered: every pair counts once in `earlier`
            shared_offsets = pairs != sum(n * (n - 1) // 2 for n in counts)
        attention = torch.cat([self.offsets[:, None, :] < query, among | self._eye(width)], 2)
        if refed:  # a committed token fed again replaces its cached copy for the slots seeing it
            b, w, cached = *offs.shape, self.offsets.shape[1]
            seen = torch.zeros(b, w, length + 1, dtype=torch.long, device=offs.device)
            hiding = torch.where(was_cached, offs, length)[:, None, :].expand(b, w, w)
            seen.scatter_add_(2, hiding, attention[:, :, cached:].long())
            attention[:, :, :cached] &= seen.gather(2, self.offsets[:, None, :].expand(b, w, cached)) == 0
        return Slots(used, at, was_cached, attention, shared_offsets)

    def _explain_proposal(self, proposal: Proposal) -> None:
        """Raise the ConfigError naming the first violation of a proposal flagged as invalid."""
        ctx, strategy = self.ctx, self.strategy
        tokens, offs = proposal.tokens, proposal.offsets
        check_proposal(proposal, ctx.batch, ctx.vocab_size, strategy)
        if offs.numel() and (int(offs.min()) < -1 or int(offs.max()) >= ctx.length):
            raise _refusal(strategy, f"placed a slot outside the span [0, {ctx.length}) (-1 marks an unused slot)")
        used = offs >= 0
        at = offs.clamp(min=0)
        stale = used & ctx.done.gather(1, at) & (ctx.tokens.gather(1, at) != tokens)
        if bool(stale.any()):
            b, j = (int(i) for i in stale.nonzero()[0])
            raise _refusal(
                strategy,
                f"fed token {int(tokens[b, j])} at committed offset {int(offs[b, j])} of row {b}, "
                f"which holds {int(ctx.tokens[b, offs[b, j]])}",
            )
        earlier = (offs[:, None, :] < offs[:, :, None]) & used[:, None, :] & used[:, :, None]
        if proposal.attends is not None and bool((proposal.attends & ~earlier).any()):
            b, i, j = (int(x) for x in (proposal.attends & ~earlier).nonzero()[0])
            raise _refusal(
                strategy,
                f"let slot {i} (offset {int(offs[b, i])}) attend to slot {j} (offset {int(offs[b, j])}) "
                f"of row {b}; a slot sees only used slots at smaller offsets",
            )
        raise RuntimeError("the placed-slot check flagged a proposal that no single check refuses; this is a bug")

    # --- targets: slot j's distribution is for offset offsets[j] + 1; p[:, 0] the prompt's -----------
    def targets(self, prepared: Prepared, scores: Scores) -> torch.Tensor:
        ctx, offs = self.ctx, prepared.proposal.offsets
        first, batch = prepared.window.first, offs.shape[0]
        targets = offs + 1
        where = torch.cat([offs.new_zeros(batch, 1), targets], 1) if first else targets
        p = target_probs(scores, ctx.allowed_at(where), ctx.sampling, step=ctx.step)
        if not first:
            if self._no_prompt is None or self._no_prompt.dtype != p.dtype:
                self._no_prompt = p.new_zeros(batch, 1, p.shape[-1])
            p = torch.cat([self._no_prompt, p], 1)
        return p

    # --- commit: check every entry at once, then mark what the cache keeps ------------------------
    def commit(self, prepared: Prepared, answer: Verdict | Commits, remaining: Sequence[int]) -> Committed:
        ctx, strategy, proposal, slots = self.ctx, self.strategy, prepared.proposal, prepared.details
        if not isinstance(answer, Commits):
            raise _refusal(
                strategy, f"answered placed slots with a {type(answer).__name__}; expected core.fronts.Commits"
            )
        off, tok, src = answer.offsets, answer.tokens, answer.source
        tokens, offs = proposal.tokens, proposal.offsets
        batch, width = tokens.shape
        length, vocab, first = ctx.length, ctx.vocab_size, prepared.window.first
        if off.shape[0] != batch:
            raise _refusal(strategy, f"committed for {off.shape[0]} rows of a batch of {batch}")

        # An offset past the span, one committed before or twice in this pass leaves the count of
        # committed offsets short of `committed`.
        use = off >= 0
        key = torch.where(use, off, length).clamp_(max=length)  # unused entries: the spare column
        done_before = self._done.gather(1, key)
        # each entry's offset against the one its source predicts (`_source_offsets`)
        src_c = src.clamp(-2, width + 1)
        forced = src_c == -1
        bad = (self._source_offsets(first, slots.used, offs + 1).gather(1, src_c + 2) != off) != forced
        # the token: allowed at its offset, and forced there if its source says so
        bad |= self._legal[key * (vocab + 2) + tok.clamp(-1, vocab)] <= forced
        take = use.sum(1)
        ctx.tokens.scatter_(1, key, tok)
        self._done.scatter_(1, key, use)
        final = self._done.gather(1, slots.at) & (ctx.tokens.gather(1, slots.at) == tokens)
        approximate = not strategy.lossless and bool(strategy.approximation)
        complete = None
        if not approximate:
            complete = self._complete(proposal, final, slots)
            if width:  # a slot's token only (other sources find True)
                whole = torch.cat([complete.new_ones(batch, 3), complete, complete.new_ones(batch, 1)], 1)
                bad |= ~whole.gather(1, src_c + 2)

        # cache: keep each committed offset's first slot if its context allows; the rest are holes
        keep = (final if approximate else complete) & ~slots.was_cached
        if slots.shared_offsets:
            slot = torch.arange(width, device=ctx.device).expand(batch, -1)
            first_slot = torch.full((batch, length + 1), width, dtype=torch.long, device=ctx.device)
            first_slot.scatter_reduce_(1, torch.where(keep, offs, length), slot, reduce="amin")
            keep &= first_slot.gather(1, torch.where(keep, offs, length)) == slot
        kept_at = torch.where(keep, offs, length)
        extent = (keep * self._slot_ranks(width)).amax(1) if width else take.new_zeros(batch)
        summary = torch.cat([(bad & use).any(1), ctx.done.sum(1), take, keep.sum(1), extent]).tolist()
        flagged, done_counts, taken, kept_counts, extents = (summary[i * batch : (i + 1) * batch] for i in range(5))
        if any(flagged) or any(n != length - r + t for n, r, t in zip(done_counts, remaining, taken)):
            self._explain_commits(answer, proposal, first, done_before, complete)

        kept = max(extents)
        self._cached.scatter_(1, kept_at, keep)
        if width - kept:
            self.session.crop(width - kept)
        if kept:
            self.offsets = torch.cat([self.offsets, kept_at[:, :kept]], 1)
            self.valid = torch.cat([self.valid, keep[:, :kept]], 1)
            self.valid_counts = [c + k for c, k in zip(self.valid_counts, kept_counts)]
            compacted = compact_holes(self.session, self.valid, self.valid_counts)
            if compacted is not None:
                order, self.valid = compacted
                self.offsets = self.offsets.gather(1, order)
        return Committed(take, taken)

    def _complete(self, proposal: Proposal, final: torch.Tensor, slots: Slots) -> torch.Tensor:
        """Bool[B, W]: slot j's token is committed and it saw exactly offsets 0..o-1 as committed.

        Every slot a query sees lies at an offset <= its own (the checks above), so it sees exactly
        0..o (itself included) iff it sees o + 1 slots and no offset twice. A row's valid cached
        slots hold distinct offsets, exactly those of `ctx.cached`, and a slot of the pass at a
        cached offset hides the cached copy from whoever sees it: an offset can be seen twice only
        through two slots of the pass sharing it (`shared_offsets`), where the offsets seen are counted.
        """
        length, offs, attention = self.ctx.length, proposal.offsets, slots.attention
        cached = self.offsets.shape[1]
        among = attention[:, :, cached:]
        sees_final = ~(among & ~final[:, None, :]).any(-1)
        cover = attention.sum(-1) == offs + 1
        if slots.shared_offsets:
            batch, width = offs.shape
            seen = torch.zeros(batch, width, length + 1, dtype=torch.long, device=offs.device)
            seen.scatter_add_(2, self.offsets[:, None, :].expand(batch, width, cached), attention[:, :, :cached].long())
            seen.scatter_add_(2, offs.clamp(min=0)[:, None, :].expand(batch, width, width), among.long())
            cover &= (seen[:, :, :length] <= 1).all(-1)
        return final & sees_final & cover

    def _explain_commits(
        self,
        commits: Commits,
        proposal: Proposal,
        first: bool,
        done_before: torch.Tensor,
        complete: torch.Tensor | None,
    ) -> None:
        """Raise the ConfigError naming the first violation of commits flagged as invalid.

        `done_before` is Bool[B, K]: whether each entry's offset was committed before this pass;
        `complete` the slots' context completeness (None under a declared approximation).
        """
        ctx, strategy = self.ctx, self.strategy
        off, tok, src = commits.offsets, commits.tokens, commits.source
        width = proposal.tokens.shape[1]
        use = off >= 0
        problems = [
            (off >= ctx.length, f"committed past the span's {ctx.length} offsets"),
            (use & ((tok < 0) | (tok >= ctx.vocab_size)), f"committed token ids outside [0, {ctx.vocab_size})"),
            (use & ((src < -1) | (src > width)), f"named a source outside -1..{width}"),
            (use & done_before, "committed an offset that was already committed"),
            (use & (src == 0) & (not first), "committed from p[:, 0], which only the first pass fills"),
        ]
        slot = (src - 1).clamp(min=0, max=max(width - 1, 0))
        if width:
            src_off = proposal.offsets.gather(1, slot)
            problems.append(
                (
                    use & (src >= 1) & ((src_off < 0) | (src_off + 1 != off)),
                    "committed a token at an offset other than its source slot's offset + 1",
                )
            )
        problems.append((use & (src == 0) & (off != 0), "committed from the prompt's p at an offset other than 0"))
        for bad, message in problems:
            if bool(bad.any()):
                b, k = (int(i) for i in bad.nonzero()[0])
                raise _refusal(
                    strategy, f"{message} (row {b}, entry {k}: offset {int(off[b, k])}, source {int(src[b, k])})"
                )
        counts = torch.zeros(ctx.batch, ctx.length + 1, dtype=torch.long, device=off.device)
        counts.scatter_add_(1, torch.where(use, off, ctx.length), torch.ones_like(off))
        if int(counts[:, : ctx.length].max()) > 1:
            b, o = (int(i) for i in (counts[:, : ctx.length] > 1).nonzero()[0])
            raise _refusal(strategy, f"committed offset {o} of row {b} twice in one pass")
        allowed = ctx.allowed_at(off.clamp(min=0))
        if allowed is not None:
            ok = allowed.gather(-1, tok.clamp(0, ctx.vocab_size - 1).unsqueeze(-1)).squeeze(-1)
            forced = allowed.sum(-1) == 1
            for bad, message in (
                (use & ~ok, "committed a token the layout forbids"),
                (use & (src == -1) & ~forced, "committed as forced (source -1) a token the layout does not force"),
            ):
                if bool(bad.any()):
                    b, k = (int(i) for i in bad.nonzero()[0])
                    raise _refusal(strategy, f"{message} (row {b}, offset {int(off[b, k])}, token {int(tok[b, k])})")
        elif bool((use & (src == -1)).any()):
            raise _refusal(strategy, "committed as forced (source -1) a token, but this layout forces none")
        if complete is not None and width:
            ok = complete.gather(1, (src - 1).clamp(0, width - 1))
            bad = use & (src >= 1) & ~ok
            if bool(bad.any()):
                b, k = (int(i) for i in bad.nonzero()[0])
                kind = (
                    "a lossless strategy may not" if strategy.lossless else "a lossy one must name its `approximation`"
                )
                raise _refusal(
                    strategy,
                    f"committed offset {int(off[b, k])} of row {b} from a distribution whose context "
                    f"was not all committed; {kind}",
                )
        raise RuntimeError("the placed-slot check flagged commits that no single check refuses; this is a bug")
