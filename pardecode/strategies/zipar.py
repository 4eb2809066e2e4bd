"""ZipAR (arXiv 2412.04062): decode several image rows at once, each starting once the row above
has `window` tokens.

Image tokens depend mostly on their neighbours, so the token at (r, c) is sampled as soon as row
r-1 holds columns 0..c+window-1 instead of all of it. Every started row advances one token per
pass: a row lags the one above by `window` columns, and a grid of R rows of C cells takes
C + (R-1) * window passes instead of R * (C+1). The paper also widens the window per token with a
rejection test; this is its fixed-window form.

Each pass feeds every committed token the cache lacks (the newest token of every row, and the
end-of-line that starts a row) at its own position; each sees what is committed at smaller offsets.

Lossy: a token is sampled from a context that lacks the rest of the row above it (and of the rows
further up), and its keys stay cached with that context. At `window >= cols` a row starts only
once the row above is complete, every context is whole and the output is distributed exactly as
AR's (one pass per row is still saved: the forced end-of-line is committed without a pass).
"""

from __future__ import annotations

import attrs
import torch

from ..core.errors import ConfigError
from ..core.fronts import Commits, pending
from ..core.layout import GridLayout
from ..core.strategy import DecodeContext, Proposal, Strategy, positive_int
from ..core.verify import sample


def grid_of(ctx: DecodeContext, name: str) -> GridLayout:
    """The span's grid layout; a ConfigError for a span that is not an image grid."""
    if not isinstance(ctx.layout, GridLayout):
        raise ConfigError(f"strategy {name!r} decodes image rows in parallel; backbone {ctx.backbone!r} has no grid layout")
    return ctx.layout


def row_cells(done: torch.Tensor, grid: GridLayout) -> torch.Tensor:
    """Long[B, rows]: committed cells of every image row (end-of-line excluded)."""
    cells = done[:, : grid.image_length].reshape(done.shape[0], grid.rows, grid.cols + 1)[..., : grid.cols]
    return cells.sum(-1)


def forced_commits(ctx: DecodeContext, grid: GridLayout, done: torch.Tensor, start_rows: torch.Tensor) -> Commits:
    """End-of-line of every row in `start_rows` (Bool[B, rows]: the row below may start) and, once
    every cell is committed, the end tokens: tokens the layout forces, committed without a pass."""
    stride = grid.cols + 1
    eol = torch.arange(grid.rows, device=ctx.device) * stride + grid.cols
    eol_use = start_rows & ~done[:, eol]
    tail = torch.arange(grid.image_length, ctx.length, device=ctx.device)
    finished = row_cells(done, grid).sum(1) == grid.rows * grid.cols
    tail_use = finished.unsqueeze(1) & ~done[:, tail]
    offsets = torch.cat([torch.where(eol_use, eol, -1), torch.where(tail_use, tail, -1)], 1)
    tokens = torch.cat([eol.new_full((grid.rows,), grid.end_of_line),
                        torch.tensor(grid.end_tokens, device=ctx.device)]).expand(ctx.batch, -1)
    return Commits(offsets, tokens, torch.full_like(offsets, -1))


@attrs.define
class ZipAR(Strategy):
    """Row-parallel sampling: row r+1 starts once row r has `window` tokens (lossy; exact at window >= cols)."""

    name = "zipar"
    lossless = False
    approximation = "a token is sampled before the rows above it are complete: its context lacks their remaining tokens"

    window: int = attrs.field(default=4, validator=positive_int("window"))

    def reset(self, ctx: DecodeContext) -> None:
        grid_of(ctx, self.name)

    def propose(self, ctx: DecodeContext) -> Proposal:
        if ctx.done is None:  # first pass: the prompt alone predicts offset 0
            empty = torch.zeros(ctx.batch, 0, dtype=torch.long, device=ctx.device)
            return Proposal(empty, offsets=empty)
        offsets, tokens = pending(ctx)
        return Proposal(tokens, offsets=offsets)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Commits:
        grid = grid_of(ctx, self.name)
        offs = proposal.offsets
        first = ctx.step == 0
        lead = offs.new_full((ctx.batch, 1), 0 if first else -2)  # entry 0: the prompt's, first pass only
        targets = torch.cat([lead, offs + 1], 1)
        done = ctx.done if ctx.done is not None else torch.zeros(ctx.batch, ctx.length, dtype=torch.bool, device=ctx.device)
        in_grid = (targets >= 0) & (targets < grid.image_length) & (targets % (grid.cols + 1) != grid.cols)
        wanted = in_grid & (offs.new_ones(1, 1, dtype=torch.bool) if first else torch.cat([lead >= 0, offs >= 0], 1))
        wanted &= ~done.gather(1, targets.clamp(0, ctx.length - 1))
        tokens = sample(p, ctx.generator)
        entry = torch.arange(targets.shape[1], device=ctx.device).expand_as(targets)
        drawn = Commits(torch.where(wanted, targets, -1), tokens, entry)
        after = done.clone()
        rows = torch.arange(ctx.batch, device=ctx.device).unsqueeze(1).expand_as(targets)
        after[rows[wanted], targets[wanted]] = True
        start = row_cells(after, grid) >= min(self.window, grid.cols)
        return Commits.cat(drawn, forced_commits(ctx, grid, after, start))
