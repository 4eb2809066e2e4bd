"""Reference backbones: toy models small enough that every sequence's probability is enumerated.

Each is a `pardecode.adapters.toy.ToyBackbone` (logits a closed-form function of the whole
history, so a cache bug changes them) with the prompts and sampling settings certification decodes
it under. Every reference is noise-aware (token embeddings, `noise_ready()`), so denoising drafts
(sjd2) run on all of them, and its embeddings are the image codebook latent-neighbourhood rules
(lantern, gsd) read. Its session counts forward calls (`session.calls`).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from ..adapters.toy import ToyBackbone
from ..core.config import SamplingConfig

#: prompts of every reference: the first is decoded by the batched runs; all three, in turn, by the
#: batch of different prompts (their distributions differ, so swapped rows would show)
PROMPTS = ("ab", "b", "cab")
NOISE_DIM = 4
PLAIN = SamplingConfig()


def describe(sampling: SamplingConfig) -> str:
    """A sampling setting in a few characters: "T=1", "T=0.8 top-k 2", "CFG 2"."""
    parts = [f"T={sampling.temperature:g}"]
    if sampling.top_k:
        parts.append(f"top-k {sampling.top_k}")
    if sampling.top_p < 1:
        parts.append(f"top-p {sampling.top_p:g}")
    if sampling.uses_cfg:
        parts.append(f"CFG {sampling.cfg_scale:g}")
    return " ".join(parts)


@attrs.frozen(eq=False)
class Reference:
    """A toy backbone with an enumerable span, and the settings certification decodes it under."""

    name: str
    backbone: ToyBackbone
    settings: tuple[SamplingConfig, ...] = (PLAIN,)
    prompts: tuple[str, ...] = PROMPTS
    _exact: dict = attrs.field(factory=dict, init=False, repr=False)

    @property
    def length(self) -> int:
        return self.backbone.layout().length

    @property
    def sequences(self) -> int:
        """How many token sequences the span has (the outcomes the tests bin)."""
        return self.backbone.vocab_size**self.length

    @property
    def support(self) -> int:
        """How many sequences the first prompt's first setting can produce (probability > 0)."""
        return int((self.exact(self.prompts[0], self.settings[0]) > 0).sum())

    @property
    def columns(self) -> int:
        """Columns of the image grid (0 without one)."""
        grid = self.backbone.layout().image_grid()
        return grid.cols if grid is not None else 0

    def on(self, device: str | torch.device) -> Reference:
        """This reference with its toy on `device` (the same tables, drawn on the CPU; exact
        distributions are enumerated there too and come back on the CPU)."""
        return attrs.evolve(self, backbone=attrs.evolve(self.backbone, device=device))

    def exact(self, prompt: str, sampling: SamplingConfig) -> np.ndarray:
        """Float64[sequences]: the exact AR probability of every span sequence, indexed by `codes`."""
        key = (prompt, sampling)
        if key not in self._exact:
            _, probs = self.backbone.exact_distribution(prompt, sampling)
            probs = probs.double().numpy()
            self._exact[key] = probs / probs.sum()
        return self._exact[key]

    def codes(self, tokens: torch.Tensor) -> np.ndarray:
        """Int64[B]: each row's sequence as its index in `exact` (base-vocabulary digits)."""
        v = self.backbone.vocab_size
        weights = v ** torch.arange(tokens.shape[1] - 1, -1, -1)
        return (tokens.long().cpu() * weights).sum(1).numpy()

    def counts(self, tokens: torch.Tensor) -> np.ndarray:
        """Int64[sequences]: how many rows decoded each sequence."""
        return np.bincount(self.codes(tokens), minlength=self.sequences)

    def prefix(self, probs: np.ndarray, tokens: int) -> np.ndarray:
        """The exact distribution of the first `tokens` tokens, from a whole-span one."""
        return probs.reshape(self.backbone.vocab_size**tokens, -1).sum(1)


def free_sequence() -> Reference:
    """4 free tokens over 3 symbols (81 sequences) under plain, top-k and top-p sampling."""
    backbone = ToyBackbone(vocab_size=3, length=4, sharpness=1.0, seed=3, noise_dim=NOISE_DIM)
    settings = (PLAIN, SamplingConfig(temperature=0.8, top_k=2), SamplingConfig(top_p=0.8))
    return Reference("free sequence", backbone, settings)


def guided() -> Reference:
    """The free sequence under classifier-free guidance: the unconditional branch (the prompt left
    out) has other logits than the conditional one, so guidance changes p."""
    backbone = ToyBackbone(vocab_size=3, length=4, sharpness=1.0, seed=3, noise_dim=NOISE_DIM)
    return Reference("guided", backbone, (SamplingConfig(cfg_scale=2.0),))


def grid_with_end_of_line() -> Reference:
    """2 rows of 2 cells over 2 image tokens, each row closed by a forced end-of-line, then an end
    token (16 sequences)."""
    backbone = ToyBackbone(vocab_size=4, grid=(2, 2), sharpness=1.5, seed=5, noise_dim=NOISE_DIM)
    return Reference("grid with end-of-line", backbone, (PLAIN, SamplingConfig(temperature=0.8, cfg_scale=3.0)))


def image_only_grid() -> Reference:
    """2 rows of 3 cells over 3 tokens and nothing else (729 sequences): a row starts from no
    end-of-line, which row-parallel strategies must handle."""
    backbone = ToyBackbone(vocab_size=3, grid=(2, 3), image_only=True, sharpness=1.5, seed=5, noise_dim=NOISE_DIM)
    return Reference("image-only grid", backbone)


def default_references() -> tuple[Reference, ...]:
    """What `check_exact` certifies on, in order (the first a strategy runs on hosts the prompt-batch
    and changing-window tests)."""
    return free_sequence(), guided(), grid_with_end_of_line(), image_only_grid()


def greedy_references() -> tuple[Reference, ...]:
    """Longer spans for token-for-token comparisons with greedy AR (nothing is enumerated); their
    grids have as many columns as the widest default reference's, 3."""
    common = {"sharpness": 3.0, "seed": 1, "noise_dim": NOISE_DIM}
    return (
        Reference("free sequence", ToyBackbone(vocab_size=6, length=24, **common)),
        Reference("grid with end-of-line", ToyBackbone(vocab_size=6, grid=(4, 3), **common)),
        Reference("image-only grid", ToyBackbone(vocab_size=5, grid=(4, 3), image_only=True, **common)),
    )
