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


NO_OFFSET = -4  # what an invalid or unused source predicts in the commit check: no span offset
FORCED_SOURCE = -3  # what a forced token's source (-1) looks up there: no span offset either


def _fail(strategy, message: str) -> ConfigError:
    return ConfigError(f"strategy {strategy.name!r} {message}")


class Fronts:
    """The loop's state for placed slots: where each cached span slot sits and what is committed.

    A pass costs the host two transfers: one before the forward (is the proposal valid; does any
    slot re-feed a cached token or share its offset with another) and one after the verdict (is it
    valid, and per row the tokens taken and slots kept). Each folds every check of its side into
    one reduction; only when one fails are the checks run again one by one, in a fixed order, to
    name the first violation (`_explain_proposal`, `_explain_commits`).
    """

    def __init__(self, decoder: "Decoder"):
        ctx = decoder.ctx
        if ctx.step:
            raise _fail(decoder.strategy, "placed slots after single-window passes; a decode places them from its first pass or never")
        if not getattr(decoder.session, "supports_attention", False):
            raise ConfigError(f"backbone {decoder.backbone.name!r} cannot score placed slots (its session lacks Window.attention)")
        self.decoder = decoder
        batch, length, device = ctx.batch, ctx.length, ctx.device
        # every cached span slot: its offset (`length` for a hole: no slot ever sees it) and validity
        self.offsets = torch.zeros(batch, 0, dtype=torch.long, device=device)
        self.valid = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        self.valid_counts = [0] * batch  # self.valid.sum(1), mirrored
        # done and cached keep one spare column (offset `length`) that scatters of unused entries hit
        self._done = torch.zeros(batch, length + 1, dtype=torch.bool, device=device)
        self._cached = torch.zeros_like(self._done)
        ctx.done, ctx.cached = self._done[:, :length], self._cached[:, :length]
        # what the layout makes of token t at offset o, at flat index o * (V + 2) + t: 0 forbidden,
        # 1 allowed, 2 forced (the only one allowed). Columns V and V + 1 (read by t = V and, from
        # the next offset's row, t = -1) are 0: an id outside the vocabulary is forbidden. Row
        # `length` (the spare offset) allows every id.
        table = ctx.allowed_at(torch.arange(length, device=device))
        legal = torch.zeros(length + 1, ctx.vocab_size + 2, dtype=torch.uint8, device=device)
        legal[:, : ctx.vocab_size] = 1
        if table is not None:
            legal[:length, : ctx.vocab_size] = table.to(torch.uint8) * (1 + (table.sum(-1, keepdim=True) == 1))
        self._legal = legal.reshape(-1)
        self._eyes: dict[int, torch.Tensor] = {}
        self._aims: dict[bool, torch.Tensor] = {}
        self._no_prompt: torch.Tensor | None = None  # Float[B, 1, V] zeros: p[:, 0] after the first pass
        self._rank: dict[int, torch.Tensor] = {}
        from .loop import check_proposal, compact_holes  # the single window's (loop.py imports this module)

        self._check_proposal, self._compact_holes = check_proposal, compact_holes

    def _eye(self, width: int) -> torch.Tensor:
        if width not in self._eyes:
            self._eyes[width] = torch.eye(width, dtype=torch.bool, device=self.decoder.ctx.device)
        return self._eyes[width]

    def _source_offsets(self, first: bool, used: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Long[B, W + 4]: at index source + 2, the offset a commit from that source must sit at.

        Index 0 stands for every source below -1 and index W + 3 for every source above W (both
        NO_OFFSET: they match no commit), index 1 for a forced token (FORCED_SOURCE, a value no
        offset equals: the check expects the lookup to miss exactly for forced tokens), index 2
        for the prompt's p (offset 0, at the first pass only), then slot j's offsets[j] + 1 where
        the slot is used.
        """
        if first not in self._aims:
            ctx = self.decoder.ctx
            head = [NO_OFFSET, FORCED_SOURCE, 0 if first else NO_OFFSET]
            self._aims[first] = torch.tensor(head, device=ctx.device).expand(ctx.batch, 3)
        head = self._aims[first]
        return torch.cat([head, torch.where(used, targets, NO_OFFSET), head[:, :1]], 1)

    def _ranks(self, width: int) -> torch.Tensor:
        """Long[W]: 1..W, a slot's index + 1."""
        if width not in self._rank:
            self._rank[width] = torch.arange(1, width + 1, device=self.decoder.ctx.device)
        return self._rank[width]

    # --- checks ---------------------------------------------------------------------------------
    def _slots(self, proposal: Proposal):
        """(used Bool[B, W]; at Long[B, W]: each slot's offset, `length` if unused; was_cached Bool[B, W]; attention
        Bool[B, W, S + W] over the cached and this pass's slots; twins: two used slots share an offset)."""
        ctx, strategy = self.decoder.ctx, self.decoder.strategy
        tokens, offs = proposal.tokens, proposal.offsets
        if offs is None or tokens.dim() != 2 or tokens.shape[0] != ctx.batch or tokens.dtype != torch.long:
            self._check_proposal(proposal, ctx.batch, ctx.vocab_size, strategy)  # refuses a malformed tensor
            raise _fail(strategy, "placed slots earlier in this decode; every later proposal must give offsets too")
        length, width = ctx.length, tokens.shape[1]
        used = offs >= 0
        at = torch.where(used, offs, length).clamp_(max=length)  # unused: the spare column, never done
        was_cached = self._cached.gather(1, at)
        query = offs[:, :, None]
        earlier = (offs[:, None, :] < query) & used[:, None, :]
        among = earlier if proposal.attends is None else proposal.attends
        twins = refed = False
        if width:
            stale = self._done.gather(1, at) & (ctx.tokens.gather(1, at) != tokens)
            parts = [*torch.aminmax(tokens), *torch.aminmax(offs), stale.any(), was_cached.any(), earlier.sum()]
            if proposal.attends is not None:
                parts.append((among & ~earlier).any())
            counts = used.sum(1)
            low, high, lowest, highest, stale_any, refed, pairs, *bent = torch.cat([torch.stack(parts), counts]).tolist()
            bent, counts = bent[: len(parts) - 7], bent[len(parts) - 7 :]
            if low < 0 or high >= ctx.vocab_size or lowest < -1 or highest >= length or stale_any or any(bent):
                self._explain_proposal(proposal)
            # used slots at distinct offsets are ordered: every pair counts once in `earlier`
            twins = pairs != sum(n * (n - 1) // 2 for n in counts)
        attention = torch.cat([self.offsets[:, None, :] < query, among | self._eye(width)], 2)
        if refed:  # a committed token fed again replaces its cached copy for the slots seeing it
            b, w, slots = *offs.shape, self.offsets.shape[1]
            seen = torch.zeros(b, w, length + 1, dtype=torch.long, device=offs.device)
            hiding = torch.where(was_cached, offs, length)[:, None, :].expand(b, w, w)
            seen.scatter_add_(2, hiding, attention[:, :, slots:].long())
            attention[:, :, :slots] &= seen.gather(2, self.offsets[:, None, :].expand(b, w, slots)) == 0
        return used, at, was_cached, attention, twins

    def _explain_proposal(self, proposal: Proposal) -> None:
        """Raise the ConfigError naming the first violation of a proposal flagged as invalid."""
        ctx, strategy = self.decoder.ctx, self.decoder.strategy
        tokens, offs = proposal.tokens, proposal.offsets
        self._check_proposal(proposal, ctx.batch, ctx.vocab_size, strategy)
        if offs.numel() and (int(offs.min()) < -1 or int(offs.max()) >= ctx.length):
            raise _fail(strategy, f"placed a slot outside the span [0, {ctx.length}) (-1 marks an unused slot)")
        used = offs >= 0
        at = offs.clamp(min=0)
        stale = used & ctx.done.gather(1, at) & (ctx.tokens.gather(1, at) != tokens)
        if bool(stale.any()):
            b, j = (int(i) for i in stale.nonzero()[0])
            raise _fail(strategy, f"fed token {int(tokens[b, j])} at committed offset {int(offs[b, j])} of row {b}, which holds {int(ctx.tokens[b, offs[b, j]])}")
        earlier = (offs[:, None, :] < offs[:, :, None]) & used[:, None, :] & used[:, :, None]
        if proposal.attends is not None and bool((proposal.attends & ~earlier).any()):
            b, i, j = (int(x) for x in (proposal.attends & ~earlier).nonzero()[0])
            raise _fail(strategy, f"let slot {i} (offset {int(offs[b, i])}) attend to slot {j} (offset {int(offs[b, j])}) of row {b}; a slot sees only used slots at smaller offsets")
        raise RuntimeError("the placed-slot check flagged a proposal that no single check refuses; this is a bug")

    def _explain_commits(self, commits: "Commits", proposal: Proposal, first: bool, done_before: torch.Tensor,
                         complete: torch.Tensor | None) -> None:
        """Raise the ConfigError naming the first violation of commits flagged as invalid.

        `done_before` is Bool[B, K]: whether each entry's offset was committed before this pass;
        `complete` the slots' context completeness (None under a declared approximation).
        """
        ctx, strategy = self.decoder.ctx, self.decoder.strategy
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
        if complete is not None and width:
            ok = complete.gather(1, (src - 1).clamp(0, width - 1))
            bad = use & (src >= 1) & ~ok
            if bool(bad.any()):
                b, k = (int(i) for i in bad.nonzero()[0])
                kind = "a lossless strategy may not" if strategy.lossless else "a lossy one must name its `approximation`"
                raise _fail(strategy, f"committed offset {int(off[b, k])} of row {b} from a distribution whose context was not all committed; {kind}")
        raise RuntimeError("the placed-slot check flagged commits that no single check refuses; this is a bug")

    def _complete(self, proposal: Proposal, final: torch.Tensor, attention: torch.Tensor, twins: bool) -> torch.Tensor:
        """Bool[B, W]: slot j's token is committed and it saw exactly offsets 0..o-1 as committed.

        Every slot a query sees lies at an offset <= its own (the checks above), so it sees exactly
        0..o (itself included) iff it sees o + 1 slots and no offset twice. A row's valid cached
        slots hold distinct offsets, exactly those of `ctx.cached`, and a slot of the pass at a
        cached offset hides the cached copy from whoever sees it: an offset can be seen twice only
        through two slots of the pass sharing it (`twins`), where the offsets seen are counted.
        """
        ctx = self.decoder.ctx
        offs = proposal.offsets
        slots = self.offsets.shape[1]
        among = attention[:, :, slots:]
        sees_final = ~(among & ~final[:, None, :]).any(-1)
        cover = attention.sum(-1) == offs + 1
        if twins:
            batch, width = offs.shape
            seen = torch.zeros(batch, width, ctx.length + 1, dtype=torch.long, device=offs.device)
            seen.scatter_add_(2, self.offsets[:, None, :].expand(batch, width, slots), attention[:, :, :slots].long())
            seen.scatter_add_(2, offs.clamp(min=0)[:, None, :].expand(batch, width, width), among.long())
            cover &= (seen[:, :, : ctx.length] <= 1).all(-1)
        return final & sees_final & cover

    # --- one pass -------------------------------------------------------------------------------
    def step(self, proposal: Proposal, start: float) -> None:
        d = self.decoder
        ctx, strategy = d.ctx, d.strategy
        used, at, was_cached, attention, twins = self._slots(proposal)
        tokens, offs = proposal.tokens, proposal.offsets
        batch, width = tokens.shape
        length, vocab = ctx.length, ctx.vocab_size
        first = ctx.step == 0
        key_valid = torch.cat([self.valid, used], 1)

        # score: exactly one forward pass, counted here
        t0 = time.perf_counter()
        active = None if min(d.remaining) > 0 else ctx.committed < length
        window = Window(tokens, offs, key_valid, first, proposal.noisy, active, attention)
        scores = d.session.forward(window)
        d.forward_seconds.append(time.perf_counter() - t0)
        d.widths.append(width)
        expected = (batch, width + first, vocab)
        if tuple(scores.cond.shape) != expected:
            raise BackboneError(f"backbone {d.backbone.name!r} returned logits {tuple(scores.cond.shape)}, expected {expected}")

        # process: slot j's distribution is for offset offsets[j] + 1; p[:, 0] the prompt's
        targets = offs + 1
        p = target_probs(scores, ctx.allowed_at(torch.cat([offs.new_zeros(batch, 1), targets], 1) if first else targets),
                         d.sampling, step=ctx.step)
        if not first:
            if self._no_prompt is None or self._no_prompt.dtype != p.dtype:
                self._no_prompt = p.new_zeros(batch, 1, p.shape[-1])
            p = torch.cat([self._no_prompt, p], 1)

        # verify
        commits = strategy.verify(ctx, proposal, p)
        if not isinstance(commits, Commits):
            raise _fail(strategy, f"answered placed slots with a {type(commits).__name__}; expected core.fronts.Commits")
        off, tok, src = commits.offsets, commits.tokens, commits.source
        if off.shape[0] != batch:
            raise _fail(strategy, f"committed for {off.shape[0]} rows of a batch of {batch}")

        # check and commit, every entry at once. An offset past the span, one committed before or
        # twice in this pass leaves the count of committed offsets short of `committed`.
        use = off >= 0
        key = torch.where(use, off, length).clamp_(max=length)  # unused entries: the spare column
        done_before = self._done.gather(1, key)
        # each entry's offset against the one its source predicts (`_source_offsets`)
        src_c = src.clamp(-2, width + 1)
        forced = src_c == -1
        bad = (self._source_offsets(first, used, targets).gather(1, src_c + 2) != off) != forced
        # the token: allowed at its offset, and forced there if its source says so
        bad |= self._legal[key * (vocab + 2) + tok.clamp(-1, vocab)] <= forced
        take = use.sum(1)
        committed = ctx.committed + take
        ctx.tokens.scatter_(1, key, tok)
        self._done.scatter_(1, key, use)
        final = self._done.gather(1, at) & (ctx.tokens.gather(1, at) == tokens)
        approximate = not strategy.lossless and bool(strategy.approximation)
        complete = None
        if not approximate:
            complete = self._complete(proposal, final, attention, twins)
            if width:  # a slot's token only (other sources find True)
                whole = torch.cat([complete.new_ones(batch, 3), complete, complete.new_ones(batch, 1)], 1)
                bad |= ~whole.gather(1, src_c + 2)

        # cache: keep each committed offset's first slot if its context allows; the rest are holes
        keep = (final if approximate else complete) & ~was_cached
        if twins:
            slot = torch.arange(width, device=ctx.device).expand(batch, -1)
            first_slot = torch.full((batch, length + 1), width, dtype=torch.long, device=ctx.device)
            first_slot.scatter_reduce_(1, torch.where(keep, offs, length), slot, reduce="amin")
            keep &= first_slot.gather(1, torch.where(keep, offs, length)) == slot
        kept_at = torch.where(keep, offs, length)
        extent = (keep * self._ranks(width)).amax(1) if width else take.new_zeros(batch)
        summary = torch.cat([(bad & use).any(1), ctx.done.sum(1), take, keep.sum(1), extent]).tolist()
        flagged, done_counts, taken, kept_counts, extents = (summary[i * batch : (i + 1) * batch] for i in range(5))
        if any(flagged) or any(n != length - r + t for n, r, t in zip(done_counts, d.remaining, taken)):
            self._explain_commits(commits, proposal, first, done_before, complete)
        kept = max(extents)

        self._cached.scatter_(1, kept_at, keep)
        if width - kept:
            d.session.crop(width - kept)
        if kept:
            self.offsets = torch.cat([self.offsets, kept_at[:, :kept]], 1)
            self.valid = torch.cat([self.valid, keep[:, :kept]], 1)
            self.valid_counts = [c + k for c, k in zip(self.valid_counts, kept_counts)]
            self._compact_if_sparse()

        ctx.committed = committed
        d.remaining = [r - t for r, t in zip(d.remaining, taken)]
        ctx.longest_remaining = max(d.remaining)
        ctx.step += 1
        d.counts.append(take)
        d.step_seconds.append(time.perf_counter() - start)

    def _compact_if_sparse(self) -> None:
        compacted = self._compact_holes(self.decoder.session, self.valid, self.valid_counts)
        if compacted is not None:
            order, self.valid = compacted
            self.offsets = self.offsets.gather(1, order)


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


def pending(ctx, also: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets Long[B, P], tokens Long[B, P]): committed tokens the cache lacks, by offset (-1 pads).

    `also` (Bool[B, length]) adds committed offsets to feed again although cached (a strategy that
    needs their output once more); a re-fed slot hides its cached copy from the queries seeing it.
    """
    waiting = ctx.done & ~ctx.cached
    if also is not None:
        waiting = waiting | (also & ctx.done)
    offsets = front_columns(waiting)
    return offsets, ctx.tokens.gather(1, offsets.clamp(min=0))
