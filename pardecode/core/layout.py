"""Token layouts: which tokens each position of the generated span may hold.

A layout answers, for a whole window of span offsets at once, the allowed-token mask the sampling
pipeline applies. Positions whose mask allows a single token (end-of-line, end-of-image) are thereby
forced, so drafts and verification respect the layout without any strategy knowing about images.
"""

from __future__ import annotations

import abc

import attrs
import torch

from .errors import ConfigError


@attrs.frozen(eq=False)
class Grid:
    """Where an image's cells sit in the generated span, in terms any strategy can use.

    Cell (r, c) is at span offset `start + r * stride + c`; `stride` exceeds `cols` by the tokens
    that close a row (one end-of-line in Lumina-mGPT and Emu3, none in image-only spans). A 2-D
    drafting strategy reads the token one row up at `offset - stride` (see `above`).
    """

    rows: int
    cols: int
    stride: int
    length: int  # tokens in the whole span (cells, row ends, end tokens)
    start: int = 0
    #: Bool[length]: which span offsets are image cells
    cells: torch.Tensor = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self):
        if self.rows < 1 or self.cols < 1 or self.stride < self.cols or self.start < 0:
            raise ConfigError(
                f"a grid needs rows, cols >= 1, stride >= cols and start >= 0, got rows={self.rows}, "
                f"cols={self.cols}, stride={self.stride}, start={self.start}"
            )
        if self.start + (self.rows - 1) * self.stride + self.cols > self.length:
            raise ConfigError(
                f"a {self.rows}x{self.cols} grid (stride {self.stride}) does not fit a span of {self.length}"
            )
        cells = torch.zeros(self.length, dtype=torch.bool)
        offsets = self.start + torch.arange(self.rows)[:, None] * self.stride + torch.arange(self.cols)
        cells[offsets.flatten()] = True
        object.__setattr__(self, "cells", cells)

    def is_cell(self, offsets: torch.Tensor) -> torch.Tensor:
        """Bool[...]: which of Long[...] span offsets are image cells (offsets past the span are not)."""
        inside = (offsets >= 0) & (offsets < self.length)
        return inside & self.cells.to(offsets.device)[offsets.clamp(0, self.length - 1)]

    def above(self, offsets: torch.Tensor) -> torch.Tensor:
        """Long[...]: the offset of the cell one row up from each cell of `offsets`, -1 where there is
        none (row 0, or not a cell)."""
        up = offsets - self.stride
        return torch.where(self.is_cell(offsets) & (up >= self.start), up, -1)


class TokenLayout(abc.ABC):
    """The shape of a generated span: its length and the allowed tokens at every offset."""

    #: number of tokens each row generates
    length: int

    @abc.abstractmethod
    def allowed(self, offsets: torch.Tensor) -> torch.Tensor | None:
        """Bool[..., vocab] mask for Long[...] span offsets, or None when every token is allowed."""

    def image_grid(self) -> Grid | None:
        """Where the image cells sit in the span, or None for a span with no 2-D structure."""
        return None

    def is_valid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Bool[B]: each row of Long[B, T] has the layout's length and only allowed tokens."""
        if tokens.shape[1] != self.length:
            return torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        offsets = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        allowed = self.allowed(offsets)
        if allowed is None:
            return torch.ones(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        return allowed.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).all(-1)


@attrs.frozen
class FreeLayout(TokenLayout):
    """A span of `length` tokens with no constraint (text-like toy sequences)."""

    length: int = attrs.field()

    @length.validator
    def _check(self, _, value):
        if value < 1:
            raise ConfigError(f"layout length must be >= 1, got {value}")

    def allowed(self, offsets: torch.Tensor) -> None:
        return None


@attrs.frozen(eq=False)
class GridLayout(TokenLayout):
    """`rows` rows of `cols` image tokens, each row ended by `end_of_line`, then `end_tokens`.

    This is the layout of Lumina-mGPT (end tokens: end-of-image) and Emu3 (end-of-frame,
    end-of-image, end-of-sequence). Offsets at or past `length` allow only the last end token, so a
    window that runs past the end of the image stays well defined.
    """

    rows: int
    cols: int
    image_tokens: torch.Tensor  # Long[K]: the ids a grid cell may hold
    end_of_line: int
    end_tokens: tuple[int, ...]
    vocab_size: int
    _classes: torch.Tensor = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self):
        if self.rows < 1 or self.cols < 1:
            raise ConfigError(f"grid must have at least 1 row and 1 column, got {self.rows}x{self.cols}")
        if not self.end_tokens:
            raise ConfigError("a grid layout needs at least one end token")
        ids = [self.end_of_line, *self.end_tokens, *self.image_tokens.tolist()]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ConfigError(f"token ids {bad[:5]} outside the vocabulary [0, {self.vocab_size})")
        # one mask row per kind of position: 0 = image cell, 1 = end of line, 2.. = end tokens
        classes = torch.zeros(2 + len(self.end_tokens), self.vocab_size, dtype=torch.bool)
        classes[0, self.image_tokens] = True
        classes[1, self.end_of_line] = True
        for i, tok in enumerate(self.end_tokens):
            classes[2 + i, tok] = True
        object.__setattr__(self, "_classes", classes)

    @property
    def length(self) -> int:
        return self.rows * (self.cols + 1) + len(self.end_tokens)

    @property
    def image_length(self) -> int:
        return self.rows * (self.cols + 1)

    def position_class(self, offsets: torch.Tensor) -> torch.Tensor:
        """Long[...] index into the mask table: 0 image cell, 1 end-of-line, 2+i the i-th end token."""
        in_grid = offsets < self.image_length
        eol = (offsets % (self.cols + 1)) == self.cols
        tail = (offsets - self.image_length).clamp(0, len(self.end_tokens) - 1) + 2
        return torch.where(in_grid, eol.long(), tail)

    def allowed(self, offsets: torch.Tensor) -> torch.Tensor:
        return self._classes.to(offsets.device)[self.position_class(offsets)]

    def image_grid(self) -> Grid:
        return Grid(self.rows, self.cols, stride=self.cols + 1, length=self.length)

    def grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Long[B, rows, cols] image cells from Long[B, length] span tokens (EOL and ends dropped)."""
        return tokens[:, : self.image_length].reshape(-1, self.rows, self.cols + 1)[..., : self.cols]


@attrs.frozen(eq=False)
class ImageGridLayout(TokenLayout):
    """`rows` rows of `cols` image tokens and nothing else: no end-of-line, no end token.

    The span of class-conditional LlamaGen-style models, which stop after exactly rows x cols
    tokens. Every offset allows the image tokens (offsets past the end too, so a window that runs
    past the span stays well defined); when they are the whole vocabulary no mask is needed.
    """

    rows: int
    cols: int
    image_tokens: torch.Tensor  # Long[K]: the ids a grid cell may hold
    vocab_size: int
    _mask: torch.Tensor | None = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self):
        if self.rows < 1 or self.cols < 1:
            raise ConfigError(f"grid must have at least 1 row and 1 column, got {self.rows}x{self.cols}")
        ids = self.image_tokens.tolist()
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad or not ids:
            raise ConfigError(
                f"image token ids must be non-empty and inside [0, {self.vocab_size}), got {bad[:5] or ids}"
            )
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[self.image_tokens] = True
        object.__setattr__(self, "_mask", None if bool(mask.all()) else mask)

    @property
    def length(self) -> int:
        return self.rows * self.cols

    def allowed(self, offsets: torch.Tensor) -> torch.Tensor | None:
        if self._mask is None:
            return None
        return self._mask.to(offsets.device).expand(*offsets.shape, self.vocab_size)

    def image_grid(self) -> Grid:
        return Grid(self.rows, self.cols, stride=self.cols, length=self.length)

    def grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Long[B, rows, cols] image cells from Long[B, length] span tokens."""
        return tokens[:, : self.length].reshape(-1, self.rows, self.cols)
