"""Training sequences for fine-tuning: prompt rows from the adapter, then the generated span.

Built through the backbone's own `encode`, so every family's prompt template and CFG row are
exactly those decoding uses; the unconditional row replaces the prompt for a fraction of samples
so guidance keeps working after fine-tuning.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from ..core.config import SamplingConfig
from ..core.errors import ConfigError


@attrs.frozen
class TrainingSet:
    """Left-padded sequences [N, T]: prompt row, then a span of `span` tokens ending at column T."""

    ids: torch.Tensor  # Long[N, T]
    valid: torch.Tensor  # Bool[N, T]: False on left padding
    noisable: torch.Tensor  # Bool[T]: span columns holding image cells (the only ones ever noised)
    span: int

    def __attrs_post_init__(self):
        if self.ids.shape != self.valid.shape or self.noisable.shape != (self.ids.shape[1],):
            raise ConfigError(
                f"inconsistent training set shapes {tuple(self.ids.shape)}, {tuple(self.valid.shape)}, "
                f"{tuple(self.noisable.shape)}"
            )

    def __len__(self) -> int:
        return self.ids.shape[0]

    def batch(self, index: torch.Tensor) -> TrainingSet:
        return TrainingSet(self.ids[index], self.valid[index], self.noisable, self.span)

    @property
    def targets(self) -> torch.Tensor:
        """Bool[T-1]: which next-token predictions (position t predicts t+1) are span targets."""
        cols = torch.arange(1, self.ids.shape[1])
        return cols >= self.ids.shape[1] - self.span


def noisable_offsets(layout) -> torch.Tensor:
    """Bool[length]: span offsets whose token is not forced by the layout (image cells, or every
    offset of a span without end-of-line and end tokens)."""
    grid = layout.image_grid()
    if grid is not None:
        return grid.cells.clone()
    allowed = layout.allowed(torch.arange(layout.length))
    return allowed.sum(-1) > 1 if allowed is not None else torch.ones(layout.length, dtype=torch.bool)


def training_set(
    backbone, prompts: Sequence[str], spans: torch.Tensor, *, uncond_rate: float = 0.1, seed: int = 0, **encode_options
) -> TrainingSet:
    """Sequences for `prompts` [N] followed by `spans` Long[N, L] (valid layouts of the backbone).

    `encode_options` go to the backbone's `encode` (e.g. size=...), as `start` options do.
    """
    if len(prompts) != spans.shape[0]:
        raise ConfigError(f"{len(prompts)} prompts for {spans.shape[0]} spans")
    if not 0 <= uncond_rate < 1:
        raise ConfigError(f"uncond_rate must be in [0, 1), got {uncond_rate!r}")
    unique = sorted(set(prompts))
    encoded = backbone.encode(unique, SamplingConfig(cfg_scale=2.0), **encode_options)
    layout = encoded.layout
    if spans.shape[1] != layout.length:
        raise ConfigError(f"spans have {spans.shape[1]} tokens; the layout needs {layout.length}")
    if not bool(layout.is_valid(spans).all()):
        raise ConfigError("some spans do not follow the backbone's layout")
    row_of = {p: i for i, p in enumerate(unique)}
    g = torch.Generator().manual_seed(seed)
    drop = (torch.rand(len(prompts), generator=g) < uncond_rate).tolist()
    rows = [(encoded.uncond if d else encoded.cond)[row_of[p]] for p, d in zip(prompts, drop)]
    width = max(map(len, rows))
    head = torch.full((len(rows), width), backbone.pad_id, dtype=torch.long)
    valid = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):  # once per data set
        head[i, width - len(r) :] = torch.tensor(r)
        valid[i, width - len(r) :] = True
    noisable = torch.cat([torch.zeros(width, dtype=torch.bool), noisable_offsets(layout)])
    ids = torch.cat([head, spans.long()], 1)
    return TrainingSet(ids, torch.cat([valid, torch.ones_like(spans, dtype=torch.bool)], 1), noisable, layout.length)


def fashion_spans(
    backbone, split: str, limit: int | None = None, seed: int = 0, data_dir=None
) -> tuple[list[str], torch.Tensor]:
    """(prompts, spans) of Fashion-MNIST `split`, tokenised with the backbone's own codebook."""
    from ..fashion import CLASS_NAMES, vocab
    from ..fashion.data import load
    from ..fashion.tokenizer import PatchTokenizer

    decoder_file = getattr(getattr(backbone, "spec", None), "image_decoder", None)
    if decoder_file is None or getattr(backbone, "root", None) is None:
        raise ConfigError("Fashion-MNIST data needs a backbone whose checkpoint ships a codebook (the fashion model)")
    images, labels = load(split, data_dir)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)[: limit or len(labels)]
    codes = PatchTokenizer.load(backbone.root / decoder_file).encode(images[order.numpy()])
    spans = vocab.image_span(codes)
    phrasings = [vocab.PROMPTS_BY_CLASS[CLASS_NAMES[int(c)]] for c in labels[order.numpy()]]
    pick = torch.randint(0, 1 << 30, (len(order),), generator=g).tolist()
    prompts = [ph[i % len(ph)] for ph, i in zip(phrasings, pick)]
    return prompts, spans


def self_spans(
    backbone, prompts: Sequence[str], count: int, seed: int = 0, batch: int = 16, **start_options
) -> tuple[list[str], torch.Tensor]:
    """(prompts, spans): `count` AR samples of the backbone itself (for models without a data set)."""
    from ..api import decode

    if count < 1 or not prompts:
        raise ConfigError(f"self data needs count >= 1 and at least one prompt, got {count} and {list(prompts)!r}")
    chosen = [prompts[i % len(prompts)] for i in range(count)]
    spans = [
        decode(backbone, "ar", chosen[i : i + batch], seed=seed + i, **start_options).tokens
        for i in range(0, count, batch)
    ]
    return chosen, torch.cat(spans)
