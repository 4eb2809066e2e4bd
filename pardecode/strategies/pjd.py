"""Parallel Jacobi Decoding (PJD, arXiv 2606.05703): speculative Jacobi windows on several image
rows at once, under a row-causal mask.

Images depend mostly on nearby tokens, so instead of one long 1D window (whose acceptance
saturates) PJD runs a short window on every active row: a row starts once the row above has `lag`
committed cells, stays `lag` cells behind it (a cell is committed only once the row above holds
its column + `lag`, so rows never overtake the context they read; `ahead` loosens that by as many
columns), and at most `rows` rows are active at a time. Every pass scores, in one forward,
the committed tokens the cache lacks and W drafts per active row; each row's drafts see the
committed tokens and the earlier drafts of their own row only (the row-causal mask: another row's
unverified drafts never leak in; `mask="causal"` lets them see the drafts of the rows above that
their next cell waits for, i.e. up to `lag - ahead` columns further right per row up, and a row
then follows what the row above commits in the same pass). Each row then verifies its window as SJD does (min(1, p/q),
residual resample, bonus), keeps its accepted run plus one token, and carries the rest of the
pass's outputs over as its next drafts (Jacobi update). A row's first drafts copy the token above
(`init="above"`) or are uniform (`"random"`); redraws are Gumbel-coupled by default, as in SJD.

Any span with an image grid (`ctx.grid`) works. With an end-of-line per row (`GridLayout`) a row
starts when the end-of-line above it is committed (a forced token, free) and that end-of-line feeds
the row's first cell. In an image-only span (stride = cols) the strategy records which rows have
started, and a row's first cell is predicted from the slot at the last cell of the row above: when
that cell is not committed yet, a stand-in token is fed there (the newest committed cell of the row
above, `rows.stand_ins`), seen by that row's slots only and never committed.

Lossy where it approximates: the topmost active row sees its whole context, so its verification
is exact speculative sampling; the rows below verify against a context that lacks the undecided
rest of the rows above, and their keys keep that context (in an image-only span a row's first
drafts and token also read the stand-in). With `rows=1` only one row is active, a row starts
once the row above is complete (no stand-in is ever fed), and the decode is exactly
AR-distributed; the loop then checks every commit's context (`lossless` is True). This is an
implementation from the paper's description (row-wise sliding windows, row-causal mask, rows
started after enough context above); its constants are ours.
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.fronts import Commits, front_columns, pending
from ..core.strategy import DecodeContext, Proposal, Strategy, non_negative_int, one_of, positive_int
from ..core.verify import acceptance_probability, correction_distribution, first_false, sample, take_per_row
from .drafting import check_coupling
from .rows import RowEnds, UniformDraws, committed_after, has_row_ends, row_cells, row_parallel_grid, stand_ins

PJD_INITS = ("above", "random")
PJD_MASKS = ("row", "causal")


@attrs.define
class PJD(Strategy):
    """Row-parallel speculative Jacobi: a window per active image row, row-causal mask (lossy; exact at rows=1)."""

    name = "pjd"
    claim = Claim.exact_at(rows=1)
    approximation = (
        "rows below the topmost active one are verified against a context that lacks the undecided rest "
        "of the rows above "
        "(in an image-only span a row's first cell also reads a stand-in for the last cell of the row above)"
    )

    # defaults chosen with the `fronts` benchmark suite on the default model (docs/results.md)
    window: int = attrs.field(default=4, validator=positive_int("window"))
    lag: int = attrs.field(default=1, validator=positive_int("lag"))
    rows: int = attrs.field(default=64, validator=positive_int("rows"))
    #: columns a row may run past the `lag` limit (0: never; larger: more parallel, less context)
    ahead: int = attrs.field(default=0, validator=non_negative_int)
    #: "row": a row's drafts see committed tokens and their own row (the paper's row-causal mask);
    #: "causal": also the drafts of the rows above that its next cell waits for, and a row may then
    #: follow the row above within the same pass (its commits stop `lag` columns behind what the row
    #: above commits in that pass)
    mask: str = attrs.field(default="row", validator=one_of(PJD_MASKS))
    init: str = attrs.field(default="above", validator=one_of(PJD_INITS))
    coupling: str = attrs.field(default="gumbel", validator=check_coupling)
    # per image row: drafts for the row's next `window` cells and their draft distributions
    _drafts: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)  # Long[B, R, W]
    _q: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)  # Float[B, R, W, V]
    _live: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)  # Bool[B, R]: has drafts
    _noise: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)  # Float[B, length, V]
    _pass: dict | None = attrs.field(default=None, init=False, repr=False)  # this pass's fronts
    #: Bool[B, R] rows started (image-only spans; with an end-of-line per row it is read off the span)
    _started: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _ends: RowEnds | None = attrs.field(
        default=None, init=False, repr=False
    )  # forced tokens, with an end-of-line per row
    _uniform: UniformDraws | None = attrs.field(
        default=None, init=False, repr=False
    )  # first drafts under `init="random"`

    @property
    def lossless(self) -> bool:  # one active row: every verification sees its whole context
        return self.rows == 1

    def reset(self, ctx: DecodeContext) -> None:
        grid = row_parallel_grid(ctx, self.name)
        b, r, w, v = ctx.batch, grid.rows, self.window, ctx.vocab_size
        # one spare row at index R: unused fronts read and write it, never a real row
        self._drafts = torch.zeros(b, r + 1, w, dtype=torch.long, device=ctx.device)
        self._q = torch.zeros(b, r + 1, w, v, device=ctx.device)
        self._live = torch.zeros(b, r + 1, dtype=torch.bool, device=ctx.device)
        self._noise = None
        self._ends = RowEnds(ctx, ctx.layout) if has_row_ends(ctx) else None
        self._uniform = UniformDraws(ctx)
        self._started = torch.zeros(b, r, dtype=torch.bool, device=ctx.device)
        self._started[:, 0] = True
        if self.coupling == "gumbel":  # one Gumbel vector per span offset, kept until it is committed
            u = torch.rand(b, ctx.length, v, generator=ctx.generator, device=ctx.device)
            self._noise = -torch.log(-torch.log(u.clamp_(min=torch.finfo(torch.float32).tiny)))

    # --- which rows run ---------------------------------------------------------------------------
    def _rows_state(self, ctx: DecodeContext, done: torch.Tensor):
        """(cells Long[B, R], started Bool[B, R], complete Bool[B, R]) given committed offsets `done`."""
        grid = ctx.grid
        cells = row_cells(done, grid)
        if not has_row_ends(ctx):  # image-only: no end-of-line to read, the strategy keeps the state
            return cells, self._started, cells == grid.cols
        eol_above = torch.arange(grid.rows - 1, device=ctx.device) * grid.stride + grid.cols
        started = torch.cat([torch.ones_like(done[:, :1]), done[:, eol_above]], 1)
        return cells, started, cells == grid.cols

    def _fresh(self, ctx: DecodeContext, offsets: torch.Tensor) -> torch.Tensor:
        """Long[...] first drafts at `offsets`: the committed token above, else uniform."""
        drawn = self._uniform(ctx, offsets.reshape(ctx.batch, -1)).reshape(offsets.shape)
        if self.init == "random" or ctx.done is None:
            return drawn
        above = (offsets - ctx.grid.stride).clamp(min=0).reshape(ctx.batch, -1)
        known = (offsets >= ctx.grid.stride) & ctx.done.gather(1, above).reshape(offsets.shape)
        return torch.where(known, ctx.tokens.gather(1, above).reshape(offsets.shape), drawn)

    # --- the strategy ---------------------------------------------------------------------------
    def propose(self, ctx: DecodeContext) -> Proposal:
        grid = row_parallel_grid(ctx, self.name)
        b, w, stride = ctx.batch, self.window, grid.stride
        done = ctx.done if ctx.done is not None else torch.zeros(b, ctx.length, dtype=torch.bool, device=ctx.device)
        cells, started, complete = self._rows_state(ctx, done)
        active = started & ~complete
        count = active.sum(1)
        # one host transfer: the number of fronts (a shape) and whether any row starts now
        f, any_new = torch.stack([count.max(), (active & ~self._live[:, : grid.rows]).any()]).tolist()
        order = front_columns(active, f)  # active rows first, -1 past them
        front_ok = order >= 0  # Bool[B, F]
        row = torch.where(front_ok, order, grid.rows)  # unused fronts: the spare row
        at_row = row.clamp(max=grid.rows - 1)
        start = at_row * stride + cells.gather(1, at_row)  # Long[B, F]: the front's next offset
        k = torch.arange(w, device=ctx.device)
        offs = start.unsqueeze(2) + k  # Long[B, F, W]
        row_end = (at_row * stride + grid.cols).unsqueeze(2)  # the row's end-of-line: drafts stop before it
        # a row stays `lag` cells behind the row above (as zipar's window): column c is committed only
        # once the row above holds c + lag cells, so every pass can still commit one token per row
        above = at_row - 1
        above_cells = torch.where(above >= 0, cells.gather(1, above.clamp(min=0)), grid.cols + self.lag + self.window)
        above_cells = torch.where(above_cells >= grid.cols, grid.cols + self.lag + self.window, above_cells)
        bound = above_cells + (self.window if self.mask == "causal" else 0)  # causal: the row above may move this pass
        reach = (bound - self.lag + self.ahead - (start - at_row * stride)).clamp(0, self.window)
        ok = front_ok.unsqueeze(2) & (offs < row_end) & (k < reach.unsqueeze(2))

        # rows just started get fresh drafts
        if any_new:
            new = front_ok & ~self._live.gather(1, row)
            fresh = self._fresh(ctx, offs.clamp(max=ctx.length - 1))
            drafts = torch.where(new.unsqueeze(2), fresh, self._drafts.gather(1, row.unsqueeze(2).expand(-1, -1, w)))
            self._store(row, front_ok, drafts)
            self._store_q(torch.where(new, row, grid.rows), torch.nn.functional.one_hot(fresh, ctx.vocab_size).float())
            self._live = self._live.scatter(1, row, self._live.gather(1, row) | front_ok)
        drafts = self._drafts.gather(1, row.unsqueeze(2).expand(-1, -1, w))

        # the front's input: the committed token just before it (the prompt's output at the first pass),
        # fed again if the cache holds it already (a next token equal to the draft fed at its offset);
        # in an image-only span a row started before the row above is complete has no committed token
        # there (the row above's last cell): a stand-in is fed instead (rows.stand_ins)
        before = (start - 1).clamp(min=0)
        stand_in = front_ok & (start > 0) & ~done.gather(1, before)  # never with an end-of-line per row
        if ctx.done is None:  # first pass: row 0 alone, fed by the prompt
            pend_off = pend_tok = torch.zeros(b, 0, dtype=torch.long, device=ctx.device)
        else:
            # every fed input is committed, so `pending` lists it: no front can lose its input
            fed = front_ok & (start > 0) & ~stand_in
            pend_off, pend_tok = pending(ctx, also=committed_after(torch.zeros_like(done), start - 1, fed))
        p_count = pend_off.shape[1]
        slot_of = torch.full((b, ctx.length + 1), -1, dtype=torch.long, device=ctx.device)
        slot_of.scatter_(
            1, torch.where(pend_off >= 0, pend_off, ctx.length), torch.arange(p_count, device=ctx.device).expand(b, -1)
        )
        input_slot = slot_of.gather(1, before)
        stand_count = 0
        # one stand-in slot per front (-1: none), right after the pending ones (image-only spans only)
        if self._ends is None and bool(stand_in.any()):
            need = torch.zeros(b, grid.rows + 1, dtype=torch.bool, device=ctx.device).scatter(1, row, stand_in)[
                :, : grid.rows
            ]
            stand_off, stand_tok = stand_ins(ctx, grid, need)
            stand_off = torch.where(stand_in, stand_off.gather(1, at_row), -1)
            stand_tok = stand_tok.gather(1, at_row)
            stand_count = f
            input_slot = torch.where(stand_in, p_count + torch.arange(f, device=ctx.device), input_slot)
        input_entry = torch.where(start == 0, 0, 1 + input_slot)
        draft_entry = 1 + p_count + stand_count + torch.arange(f * w, device=ctx.device).view(1, f, w)
        entries = torch.cat([input_entry.unsqueeze(2), draft_entry.expand(b, -1, -1)], 2)  # [B, F, W+1]

        slot_offs = torch.where(ok, offs, -1).view(b, f * w)
        draft_front = torch.arange(f, device=ctx.device).repeat_interleave(w).expand(b, -1)
        if stand_count:
            offsets = torch.cat([pend_off, stand_off, slot_offs], 1)
            tokens = torch.cat([pend_tok, stand_tok, drafts.reshape(b, f * w)], 1)
            front = torch.cat(
                [torch.full_like(pend_off, -1), torch.arange(f, device=ctx.device).expand(b, -1), draft_front], 1
            )
        else:
            offsets = torch.cat([pend_off, slot_offs], 1)
            tokens = torch.cat([pend_tok, drafts.reshape(b, f * w)], 1)
            front = torch.cat([torch.full_like(pend_off, -1), draft_front], 1)
        used = offsets >= 0
        attends = (offsets[:, None, :] < offsets[:, :, None]) & used[:, None, :] & used[:, :, None]
        # committed tokens fed again (front -1) never see a draft: their keys stay cached
        draft_seen = front[:, None, :] != -1
        other_front = draft_seen & (front[:, None, :] != front[:, :, None])
        attends &= ~(draft_seen & (front[:, :, None] == -1))
        if self.mask == "row":
            attends &= ~other_front
        else:  # causal: only the drafts above that must be committed before this slot's next cell
            row_of, column = offsets.div(stride, rounding_mode="floor"), offsets % stride
            rows_up = row_of[:, :, None] - row_of[:, None, :]
            attends &= ~other_front | (column[:, None, :] <= column[:, :, None] + rows_up * (self.lag - self.ahead))
        if stand_count:  # a stand-in sees committed tokens only, is seen by its own row's slots only,
            # and they see no other slot at its offset
            is_stand = torch.zeros_like(used)
            is_stand[:, p_count : p_count + f] = stand_off >= 0
            attends &= ~((is_stand[:, None, :] | is_stand[:, :, None]) & other_front)
            own = torch.where(
                front >= 0, stand_off.gather(1, front.clamp(min=0)), -1
            )  # Long[B, W]: the slot's stand-in offset
            attends &= ~((own[:, :, None] >= 0) & (offsets[:, None, :] == own[:, :, None]) & ~is_stand[:, None, :])
        self._pass = dict(
            row=row,
            front_ok=front_ok,
            start=start,
            ok=ok,
            drafts=drafts,
            entries=entries,
            column=start - at_row * stride,
        )
        return Proposal(tokens, offsets=offsets, attends=attends)

    def _store(self, row, front_ok, drafts) -> None:
        """Write per-front drafts back to their image rows (the spare row, which every unused front
        names, keeps its own, so the tokens fed at unused slots never change)."""
        w = drafts.shape[2]
        keep = torch.where(front_ok.unsqueeze(2), drafts, self._drafts.gather(1, row.unsqueeze(2).expand(-1, -1, w)))
        self._drafts[self._batch_index(row), row] = keep

    def _store_q(self, row, q) -> None:
        """Write per-front draft distributions Float[B, F, W, V] to their image rows, in place.

        Unused fronts write the spare row: what it holds is only ever read for unused fronts, whose
        results are dropped, so no copy of the old values has to be gathered to keep it."""
        self._q[self._batch_index(row), row] = q

    @staticmethod
    def _batch_index(row: torch.Tensor) -> torch.Tensor:
        """Long[B, F]: each front's batch row, to index per-row state with `row`."""
        return torch.arange(row.shape[0], device=row.device).unsqueeze(1).expand_as(row)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Commits:
        grid = ctx.grid
        s = self._pass
        row, front_ok, start, ok, drafts, entries = (
            s[k] for k in ("row", "front_ok", "start", "ok", "drafts", "entries")
        )
        b, f, w = drafts.shape
        v = ctx.vocab_size
        pf = p.gather(1, entries.view(b, -1, 1).expand(-1, -1, v)).view(b * f, w + 1, v)
        q = self._q.gather(1, row[:, :, None, None].expand(-1, -1, w, v)).view(b * f, w, v)
        d = drafts.reshape(b * f, w)
        valid = ok.reshape(b * f, w)
        n_valid = valid.sum(1)
        a = acceptance_probability(pf, d, q) * valid
        u = torch.rand(a.shape, generator=ctx.generator, device=ctx.device)
        accepted = first_false(u < a)
        dist = correction_distribution(pf, d, q, accepted)
        stopped = accepted >= n_valid  # every valid draft kept: the next token is a plain draw (bonus)
        if self.mask == "causal" and f > 1:
            accepted, capped = self._follow(ctx, accepted.view(b, f), s["column"], front_ok)
            stopped = stopped | capped.view(-1)
            accepted = accepted.view(-1)
        dist = torch.where(stopped.unsqueeze(1), take_per_row(pf, accepted), dist)
        next_token = sample(dist, ctx.generator)

        # commits: the accepted run, then the next token unless it would be the end-of-line
        k = torch.arange(w + 1, device=ctx.device)
        acc = accepted.view(b, f, 1)
        offs = start.unsqueeze(2) + k
        tokens = torch.where(k < acc, torch.cat([drafts, drafts[:, :, :1]], 2), next_token.view(b, f, 1))
        cell = offs - row.clamp(max=grid.rows - 1).unsqueeze(2) * grid.stride
        use = front_ok.unsqueeze(2) & (k <= acc) & (cell < grid.cols)
        drawn = Commits(torch.where(use, offs, -1).view(b, -1), tokens.view(b, -1), entries.view(b, -1))

        self._advance(ctx, pf, accepted, row, front_ok, start)
        after = committed_after(ctx.done, offs, use)
        starts = self._starts(ctx, after)
        if self._ends is None:  # image-only: nothing to commit for a row start, the strategy records it
            self._started = self._started | torch.cat([torch.zeros_like(starts[:, :1]), starts[:, :-1]], 1)
            return drawn
        return Commits.cat(drawn, self._ends.commits(after, starts))

    def _follow(self, ctx, accepted, column, front_ok):
        """(accepted, capped) Long/Bool[B, F]: each row's run stopped `lag` columns behind the drafts
        the row above keeps in this pass (the ones its drafts saw, and which are now committed);
        fronts are active rows in order, so the row above an active row is the previous front or
        complete. -1: the row commits nothing this pass (its next token would have seen a draft the
        row above rejected). Stopping verification early keeps the stop's draw a plain sample of p."""
        cols = ctx.grid.cols
        out = [accepted[:, 0]]
        capped = [torch.zeros_like(front_ok[:, 0])]
        for i in range(1, accepted.shape[1]):  # one step per active row, not per token
            above = column[:, i - 1] + out[-1].clamp(min=0)  # cells of the row above that this pass saw as final
            limit = torch.where(front_ok[:, i - 1] & (above < cols), above - self.lag + self.ahead - column[:, i], cols)
            limit = limit.clamp(min=-1)
            capped.append(front_ok[:, i] & (accepted[:, i] > limit))
            out.append(torch.minimum(accepted[:, i], limit))
        return torch.stack(out, 1), torch.stack(capped, 1)

    def _starts(self, ctx: DecodeContext, after: torch.Tensor) -> torch.Tensor:
        """Bool[B, R]: rows whose end-of-line is committed now (the row below starts, or it is the last
        and complete); in an image-only span the row below is recorded as started instead."""
        grid = ctx.grid
        cells, started, complete = self._rows_state(ctx, after)
        room = self.rows - (started & ~complete).sum(1, keepdim=True)
        ready = ~started[:, 1:] & started[:, :-1] & (cells[:, :-1] >= min(self.lag, grid.cols))
        if self.rows == 1:  # one row at a time: the next starts when this one is complete
            ready &= complete[:, :-1]
        ready &= ready.long().cumsum(1) <= room
        return torch.cat([ready, complete[:, -1:]], 1)

    def _advance(self, ctx, pf, accepted, row, front_ok, start) -> None:
        """Jacobi update per row: this pass's outputs past the accepted run become the next drafts."""
        b, f = row.shape
        w, v = self.window, ctx.vocab_size
        if self._noise is None:
            outputs = sample(pf, ctx.generator)
        else:
            at = (start.unsqueeze(2) + torch.arange(w + 1, device=ctx.device)).clamp(max=ctx.length - 1).view(b, -1)
            noise = self._noise.gather(1, at.unsqueeze(2).expand(-1, -1, v)).view(b * f, w + 1, v)
            outputs = (pf.log() + noise).argmax(-1)
        source = accepted.unsqueeze(1) + 1 + torch.arange(w, device=ctx.device)
        stale = source > w
        idx = source.clamp(max=w)
        carried = outputs.gather(1, idx)
        q = pf.gather(1, idx.unsqueeze(2).expand(-1, -1, v))
        new_start = start + accepted.view(b, f) + 1
        new_offs = (new_start.unsqueeze(2) + torch.arange(w, device=ctx.device)).clamp(max=ctx.length - 1)
        fresh = self._fresh(ctx, new_offs).view(b * f, w)
        drafts = torch.where(stale, fresh, carried)
        q = torch.where(stale.unsqueeze(2), torch.nn.functional.one_hot(fresh, v).to(q.dtype), q)
        self._store(row, front_ok, drafts.view(b, f, w))
        self._store_q(row, q.view(b, f, w, v))
