"""Per-pass helpers shared by the row-parallel strategies (`zipar`, `pjd`): marking commits without
a host transfer, and the tokens a row layout forces, built once per decode.

They run every pass on small tensors, where each extra kernel or host transfer shows against the
forward; the results equal what a per-pass rebuild would give.
"""

from __future__ import annotations

import torch

from ..core.fronts import Commits, front_columns
from ..core.layout import Grid, GridLayout


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
        tokens = torch.cat([self.eol.new_full((layout.rows,), layout.end_of_line), torch.tensor(layout.end_tokens, device=device)])
        self.tokens = tokens.expand(ctx.batch, -1)
        self.source = torch.full_like(self.tokens, -1)
        self.cells = layout.rows * layout.cols

    def commits(self, done: torch.Tensor, start_rows: torch.Tensor, cells: torch.Tensor | None = None) -> Commits:
        """Forced commits, from no distribution (source -1): the end-of-line of every row in `start_rows` (Bool[B, rows]) and,
        once every cell is committed, the end tokens. `cells` (Long[B, rows], committed cells per row
        of `done`) saves recounting them when the caller has it."""
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
