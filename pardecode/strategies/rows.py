"""What the row-parallel strategies (`zipar`, `pjd`) share: the grid they decode (and a clear error
for a span they cannot), the stand-in fed for an image-only row started early, marking commits
without a host transfer, and the tokens a row layout forces, built once per decode.

They run every pass on small tensors, where each extra kernel or host transfer shows against the
forward; the results equal what a per-pass rebuild would give.
"""

from __future__ import annotations

import torch

from ..core.errors import ConfigError
from ..core.fronts import Commits, front_columns
from ..core.layout import Grid, GridLayout
from ..core.strategy import DecodeContext


def row_parallel_grid(ctx: DecodeContext, name: str) -> Grid:
    """The span's image grid (`ctx.grid`); a one-line ConfigError for a span the row-parallel
    strategies cannot decode: one with no grid, or a grid that is neither rows closed by an
    end-of-line (`GridLayout`) nor image cells only (cell (r, c) at offset r * cols + c)."""
    grid = ctx.grid
    if grid is None:
        raise ConfigError(
            f"strategy {name!r} decodes image rows in parallel; backbone {ctx.backbone!r} has a span with no image grid"
        )
    if not has_row_ends(ctx) and (grid.start or grid.stride != grid.cols or grid.length != grid.rows * grid.cols):
        raise ConfigError(
            f"strategy {name!r} decodes rows closed by an end-of-line or image-only spans; backbone {ctx.backbone!r} "
            f"has a {grid.rows}x{grid.cols} grid at offset {grid.start}, stride {grid.stride}, "
            f"in a span of {grid.length}"
        )
    return grid


def has_row_ends(ctx: DecodeContext) -> bool:
    """True when every image row is closed by a forced end-of-line (a `GridLayout`): a row then
    starts when the end-of-line above it is committed, and the strategies commit those for free."""
    return isinstance(ctx.layout, GridLayout)


def stand_ins(ctx: DecodeContext, grid: Grid, need: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets, tokens) Long[B, R]: for each row r with `need[b, r]` (an image-only row started
    before the row above is complete), a slot at the offset just before its first cell (the
    uncommitted last cell of row r-1) holding a stand-in token, -1 elsewhere.

    The stand-in is the newest committed cell of row r-1 (rows commit left to right, so it sits at
    column cells - 1). It always exists when a row starts (the row above has at least one cell),
    it is the committed token nearest to the missing one in raster order, and at a lag of one
    column it is the cell right above the row's first cell. The stand-in sees committed tokens only
    and is not itself committed, so the loop makes the slot a hole: only the pass that feeds it (and
    only its own row's slots) see it. (Should the row above commit that very token at that offset in
    the same pass, the slot is simply that token's, with a committed-only context, and stays cached.)
    """
    r = torch.arange(grid.rows, device=ctx.device)
    cells = row_cells(ctx.done, grid)
    newest = (r - 1).clamp(min=0) * grid.stride + (cells.roll(1, 1) - 1).clamp(min=0)
    offsets = torch.where(need, r * grid.stride - 1, -1)
    return offsets, ctx.tokens.gather(1, newest.expand(ctx.batch, -1))


def committed_after(done: torch.Tensor, offsets: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
    """Bool[B, length]: `done` with `offsets` (Long[B, ...]) marked where `use`; a scatter into a
    spare column stands in for boolean-mask indexing, which would wait on the host."""
    batch, length = done.shape
    after = torch.zeros(batch, length + 1, dtype=torch.bool, device=done.device)
    after[:, :length] = done
    after.scatter_(1, torch.where(use, offsets, length).view(batch, -1), True)
    return after[:, :length]


class RowEnds:
    """The tokens a `GridLayout` forces (each row's end-of-line, then the end tokens), with their
    offsets, as tensors built once per decode instead of every pass."""

    def __init__(self, ctx, layout: GridLayout):
        device = ctx.device
        self.grid = layout.image_grid()
        self.eol = torch.arange(layout.rows, device=device) * (layout.cols + 1) + layout.cols
        self.tail = torch.arange(layout.image_length, ctx.length, device=device)
        tokens = torch.cat(
            [self.eol.new_full((layout.rows,), layout.end_of_line), torch.tensor(layout.end_tokens, device=device)]
        )
        self.tokens = tokens.expand(ctx.batch, -1)
        self.source = torch.full_like(self.tokens, -1)
        self.cells = layout.rows * layout.cols

    def commits(self, done: torch.Tensor, start_rows: torch.Tensor, cells: torch.Tensor | None = None) -> Commits:
        """Forced commits, from no distribution (source -1): the end-of-line of every row in
        `start_rows` (Bool[B, rows]) and, once every cell is committed, the end tokens. `cells`
        (Long[B, rows], committed cells per row of `done`) saves recounting them when the caller has it."""
        if cells is None:
            cells = row_cells(done, self.grid)
        eol_use = start_rows & ~done[:, self.eol]
        tail_use = (cells.sum(1) == self.cells).unsqueeze(1) & ~done[:, self.tail]
        offsets = torch.cat([torch.where(eol_use, self.eol, -1), torch.where(tail_use, self.tail, -1)], 1)
        return Commits(offsets, self.tokens, self.source)


def row_cells(done: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Long[B, rows]: committed cells of every image row (end-of-line excluded)."""
    cells = done[:, : grid.rows * grid.stride].reshape(done.shape[0], grid.rows, grid.stride)[..., : grid.cols]
    return cells.sum(-1)


class UniformDraws:
    """`drafting.random_tokens` (uniform over the tokens the layout allows at each offset) from
    tables built once per decode, drawing the very same uniforms.

    The inverse-CDF draw over an allowed mask with K tokens takes, for the uniform u, the
    floor(min(u * K, K-))-th allowed token: the running sum of a 0/1 mask counts the allowed tokens
    exactly, so the lookup gives the draw's own token without a cumulative sum over the vocabulary.
    """

    def __init__(self, ctx):
        self.allowed = ctx.allowed_at(torch.arange(ctx.length, device=ctx.device))  # Bool[length, V] or None
        if self.allowed is not None:
            # per offset: its allowed tokens first, in order (the rest of the row is never read)
            self.tokens = front_columns(self.allowed).clamp(min=0)
            self.count = self.allowed.sum(1).double()

    def __call__(self, ctx, offsets: torch.Tensor) -> torch.Tensor:
        """Long[...] one uniform draw per offset of Long[...] `offsets` (in [0, length))."""
        if self.allowed is None:
            return torch.randint(ctx.vocab_size, offsets.shape, generator=ctx.generator, device=ctx.device)
        flat = offsets.reshape(-1)
        total = self.count[flat].unsqueeze(1)
        u = torch.rand(total.shape, generator=ctx.generator, device=ctx.device, dtype=torch.float64)
        nth = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total))).long()
        return self.tokens[flat].gather(1, nth).reshape(offsets.shape)
