"""ZipAR (arXiv 2412.04062): decode several image rows at once, each starting once the row above
has `window` tokens.

Image tokens depend mostly on their neighbours, so the token at (r, c) is sampled as soon as row
r-1 holds columns 0..c+window-1 instead of all of it. Every started row advances one token per
pass: a row lags the one above by `window` columns, and a grid of R rows of C cells takes
C + (R-1) * window passes instead of R * (C+1). The paper also widens the window per token with a
rejection test; this is its fixed-window form.

Each pass feeds every committed token the cache lacks (the newest token of every row, and the
end-of-line that starts a row) at its own position; each sees what is committed at smaller offsets.

Any span with an image grid (`ctx.grid`) works. With rows closed by a forced end-of-line
(`GridLayout`), committing that end-of-line starts the row below, and the end-of-line slot predicts
the row's first cell. In an image-only span (stride = cols, no end-of-line) the strategy derives
which rows have started from the cells committed above, and the slot that predicts a row's first
cell sits at the last cell of the row above, which is not committed yet when the row starts early:
that pass feeds a stand-in token there (the newest committed cell of the row above, see
`rows.stand_ins`), seen by that slot alone and never committed, so the loop drops it afterwards.

Lossy: a token is sampled from a context that lacks the rest of the row above it (and of the rows
further up), and its keys stay cached with that context; in an image-only span a row's first token
also reads the stand-in. At `window >= cols` a row starts only once the row above is complete,
every context is whole, no stand-in is fed, and the output is distributed exactly as AR's (with an
end-of-line per row one pass per row is still saved: it is committed without a pass).
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.fronts import Commits, front_columns, pending
from ..core.layout import Grid
from ..core.strategy import DecodeContext, Proposal, Strategy, positive_int
from ..core.verify import sample
from .rows import RowEnds, committed_after, has_row_ends, row_cells, row_parallel_grid, stand_ins

# former names of the row helpers that moved to `.rows`
grid_of, row_ends, placeholders = row_parallel_grid, has_row_ends, stand_ins


def packed(offsets: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Used entries (offsets >= 0) of Long[B, R] moved to the front, in order, as few columns as any row needs."""
    order = front_columns(offsets >= 0)
    at = order.clamp(min=0)
    return torch.where(order >= 0, offsets.gather(1, at), -1), tokens.gather(1, at)


@attrs.define
class ZipAR(Strategy):
    """Row-parallel sampling: row r+1 starts once row r has `window` tokens (lossy; exact at window >= cols)."""

    name = "zipar"
    claim = Claim.exact_at(window=">= columns")
    lossless = False
    approximation = (
        "a token is sampled before the rows above it are complete: its context lacks their remaining tokens "
        "(in an image-only span a row's first token also reads a stand-in for the last cell of the row above)"
    )

    window: int = attrs.field(default=4, validator=positive_int("window"))
    _ends: RowEnds | None = attrs.field(
        default=None, init=False, repr=False
    )  # forced tokens, with an end-of-line per row

    def reset(self, ctx: DecodeContext) -> None:
        row_parallel_grid(ctx, self.name)
        self._ends = RowEnds(ctx, ctx.layout) if has_row_ends(ctx) else None

    def _started(self, grid: Grid, cells: torch.Tensor) -> torch.Tensor:
        """Bool[B, R]: rows that may sample (row 0, and every row whose row above has `window` cells)."""
        return torch.cat(
            [torch.ones_like(cells[:, :1], dtype=torch.bool), cells[:, :-1] >= min(self.window, grid.cols)], 1
        )

    def propose(self, ctx: DecodeContext) -> Proposal:
        if ctx.done is None:  # first pass: the prompt alone predicts offset 0
            empty = torch.zeros(ctx.batch, 0, dtype=torch.long, device=ctx.device)
            return Proposal(empty, offsets=empty)
        offsets, tokens = pending(ctx)
        if has_row_ends(ctx):
            return Proposal(tokens, offsets=offsets)
        # image-only: a row started with no cell yet reads its first token's distribution from the
        # slot before it, the last cell of the row above; a stand-in when that is not committed
        grid = ctx.grid
        cells = row_cells(ctx.done, grid)
        before = torch.arange(grid.rows, device=ctx.device) * grid.stride - 1
        need = (
            self._started(grid, cells)
            & (cells == 0)
            & (before >= 0)
            & ~ctx.done.gather(1, before.clamp(min=0).expand(ctx.batch, -1))
        )
        if not bool(need.any()):
            return Proposal(tokens, offsets=offsets)
        stand_off, stand_tok = packed(*stand_ins(ctx, grid, need))
        offsets, tokens = torch.cat([offsets, stand_off], 1), torch.cat([tokens, stand_tok], 1)
        used = offsets >= 0
        hidden = torch.cat([torch.zeros_like(used[:, : used.shape[1] - stand_off.shape[1]]), stand_off >= 0], 1)
        # every slot sees the used slots at smaller offsets, except a stand-in, which only it sees
        attends = (
            (offsets[:, None, :] < offsets[:, :, None]) & used[:, None, :] & used[:, :, None] & ~hidden[:, None, :]
        )
        return Proposal(tokens, offsets=offsets, attends=attends)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Commits:
        grid = row_parallel_grid(ctx, self.name)
        offs = proposal.offsets
        first = ctx.step == 0
        lead = offs.new_full((ctx.batch, 1), 0 if first else -2)  # entry 0: the prompt's, first pass only
        targets = torch.cat([lead, offs + 1], 1)
        done = (
            ctx.done
            if ctx.done is not None
            else torch.zeros(ctx.batch, ctx.length, dtype=torch.bool, device=ctx.device)
        )
        wanted = grid.is_cell(targets) & (
            offs.new_ones(1, 1, dtype=torch.bool) if first else torch.cat([lead >= 0, offs >= 0], 1)
        )
        wanted &= ~done.gather(1, targets.clamp(0, ctx.length - 1))
        if not has_row_ends(ctx):  # a slot before a row's first cell samples it only once the row has started
            row = targets.clamp(min=0).div(grid.stride, rounding_mode="floor").clamp(max=grid.rows - 1)
            wanted &= self._started(grid, row_cells(done, grid)).gather(1, row)
        tokens = sample(p, ctx.generator)
        entry = torch.arange(targets.shape[1], device=ctx.device).expand_as(targets)
        drawn = Commits(torch.where(wanted, targets, -1), tokens, entry)
        if self._ends is None:
            return drawn
        after = committed_after(done, targets, wanted)
        cells = row_cells(after, grid)
        return Commits.cat(drawn, self._ends.commits(after, cells >= min(self.window, grid.cols), cells))
