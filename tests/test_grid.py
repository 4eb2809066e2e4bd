"""Strategies see the image grid (DecodeContext.grid), whatever the layout; image-only spans have a layout."""

import attrs
import pytest
import tiny_models
import torch

from pardecode import decode
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.errors import ConfigError
from pardecode.core.layout import FreeLayout, Grid, GridLayout, ImageGridLayout
from pardecode.finetune.data import noisable_offsets, training_set
from pardecode.strategies.ar import AR


@attrs.define
class Watcher(AR):
    """AR that records the grid it was shown."""

    name = "watcher"
    seen: list = attrs.Factory(list)

    def reset(self, ctx):
        self.seen.append(ctx.grid)


def test_a_strategy_sees_rows_columns_and_cells_of_a_grid_layout():
    watcher = Watcher()
    decode(ToyBackbone(vocab_size=5, grid=(3, 4)), watcher, ["a"])
    (grid,) = watcher.seen
    assert (grid.rows, grid.cols, grid.stride, grid.length) == (3, 4, 5, 16)
    layout = ToyBackbone(vocab_size=5, grid=(3, 4)).layout()
    image_cells = layout.allowed(torch.arange(16)).sum(-1) > 1
    assert torch.equal(grid.cells, image_cells)
    assert grid.above(torch.tensor([0, 3, 4, 5, 8, 13, 14, 15, 40])).tolist() == [-1, -1, -1, 0, 3, 8, -1, -1, -1]


def test_a_span_without_a_grid_shows_none():
    watcher = Watcher()
    decode(ToyBackbone(length=5), watcher, ["a"])
    assert watcher.seen == [None]


def test_an_image_only_layout_has_no_row_ends():
    layout = ImageGridLayout(2, 3, torch.arange(2, 6), vocab_size=8)
    assert layout.length == 6
    allowed = layout.allowed(torch.arange(8).view(2, 4))
    assert allowed.shape == (2, 4, 8) and allowed[..., 2:6].all() and not allowed[..., :2].any()
    assert layout.is_valid(torch.tensor([[2, 3, 4, 5, 2, 3], [2, 3, 4, 5, 2, 7]])).tolist() == [True, False]
    assert ImageGridLayout(2, 3, torch.arange(8), vocab_size=8).allowed(torch.arange(4)) is None  # nothing to mask
    grid = layout.image_grid()
    assert (grid.rows, grid.cols, grid.stride) == (2, 3, 3) and bool(grid.cells.all())
    assert layout.grid(torch.arange(12).view(2, 6)).shape == (2, 2, 3)
    with pytest.raises(ConfigError, match="image token ids"):
        ImageGridLayout(2, 3, torch.tensor([9]), vocab_size=8)


def test_grid_checks_its_geometry():
    with pytest.raises(ConfigError, match="does not fit"):
        Grid(3, 4, stride=5, length=10)
    with pytest.raises(ConfigError, match="stride >= cols"):
        Grid(3, 4, stride=3, length=20)


def test_janus_spans_are_an_image_grid_decoded_as_before():
    """The Janus adapter's span is an ImageGridLayout; every token stays allowed, so decodes are unchanged."""
    bb = tiny_models.backbone("janus")
    watcher = Watcher()
    result = decode(bb, watcher, ["a cat"], seed=0)
    (grid,) = watcher.seen
    assert (grid.rows, grid.cols, grid.stride) == (bb.rows, bb.cols, bb.cols)
    free = decode(bb, "sjd", ["a cat"], seed=0, strategy_options={"window": 4})
    assert bb.layout().allowed(torch.arange(4)) is None and free.tokens.shape == result.tokens.shape


def test_finetune_data_for_a_span_without_row_ends():
    bb = tiny_models.backbone("janus")
    length = bb.rows * bb.cols
    spans = torch.randint(0, bb.vocab_size, (3, length), generator=torch.Generator().manual_seed(0))
    data = training_set(bb, ["a cat", "a dog", "a cat"], spans)
    assert data.span == length and bool(data.noisable[-length:].all()) and not data.noisable[:-length].any()
    assert bool(noisable_offsets(FreeLayout(4)).all())
    grid_cells = noisable_offsets(GridLayout(2, 2, torch.arange(3), end_of_line=3, end_tokens=(4,), vocab_size=5))
    assert grid_cells.tolist() == [True, True, False, True, True, False, False]


def test_finetune_sjd2_runs_on_a_backbone_without_row_ends(tmp_path, capsys):
    """The command the sjd2 refusal recommends works for an image-only span (tiny Janus)."""
    from pardecode.cli import main

    out = tmp_path / "ft"
    assert (
        main(
            [
                "finetune-sjd2",
                "--backbone",
                "janus",
                "-B",
                f"path={tiny_models.janus_dir()}",
                "--data",
                "self",
                "--prompt",
                "a cat",
                "--limit",
                "4",
                "--held-out",
                "2",
                "--steps",
                "1",
                "--batch-size",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "decode with it" in captured.out and "Writing model shards" not in captured.err
    assert (out / "model" / "noise_conditioning.safetensors").is_file()
