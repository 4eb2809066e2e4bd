"""The contract between the decoding loop and a model.

A `Backbone` turns prompts into a `Session`: the per-batch model state (prompt rows, classifier-free
guidance branch, KV cache). The loop drives the session one forward pass at a time with a `Window`
and gets `Scores` back; it decides which cache slots survive and tells the session to `crop` the
rest. Prompt templates, token layouts, CFG rows, logit masks and cache APIs are the adapter's
business; the loop sees only the generated span.

Generated-span bookkeeping (all shapes per generation row b of B):
- offsets count tokens of the generated span from 0; after n tokens are committed, the last one
  (offset n-1) is *pending*: committed but not yet in the cache.
- `Window.tokens` holds exactly the tokens that are not cached yet: at the first pass only the W
  drafts (offsets 0..W-1; the session feeds its prompt before them), afterwards the pending token
  followed by the W drafts (offsets n-1..n+W-1).
- `Session.forward` returns logits for offsets n..n+W: Float[B, W+1, V] (the first is the pending
  token's prediction, or the prompt's last position at the first pass).
- Cache slots of the generated span are appended in window order; `Window.key_valid` says which of
  them (already cached + this window's) each row may attend to. Rows advance by different amounts,
  so a row may hold invalid slots (holes) that it must never attend to. When holes pile up the
  loop asks the session to `compact` its cache; a session that cannot simply keeps them.
- Rows finish at different passes; `Window.active` lets a session stop computing finished rows.
- Placed slots (`core.fronts`): `Window.attention` then says exactly which span slots each input
  attends to, replacing "earlier slots in window order" (fronts, trees, out-of-order commits). A
  session that honours it sets `supports_attention`; the loop refuses placed slots otherwise.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from .config import SamplingConfig
from .layout import TokenLayout


@attrs.frozen
class NoisyInputs:
    """Noise-conditioned inputs for denoising strategies (SJD2).

    `embeds` are normalised token embeddings with noise mixed in, `level` the noise level per
    position; positions at level 0 must be fed exactly as their clean token.
    """

    embeds: torch.Tensor  # Float[B, q, D], normalised embedding space
    level: torch.Tensor  # Float[B, q], 0 = clean


@attrs.frozen
class Window:
    """The inputs of one forward pass over the generated span."""

    tokens: torch.Tensor  # Long[B, q] tokens not yet cached
    offsets: torch.Tensor  # Long[B, q] span offset of each input
    key_valid: torch.Tensor  # Bool[B, S + q]: which span slots (S cached, then these q) rows attend to
    first: bool  # True at the first pass: the session feeds its prompt before `tokens`
    noisy: NoisyInputs | None = None
    #: Bool[B]: rows still generating (None: all). A finished row never becomes active again and its
    #: logits are ignored, so a session may stop computing it and return zeros in its place.
    active: torch.Tensor | None = None
    #: Bool[B, q, S + q]: input i attends to span slot k (cached, then this pass's); every valid
    #: prompt token is always visible. None: earlier-or-same slots that `key_valid` allows.
    attention: torch.Tensor | None = None

    @property
    def has_holes(self) -> bool:
        return not bool(self.key_valid.all())


@attrs.frozen
class Scores:
    """Raw logits of one forward pass: Float[B, W+1, V] per CFG branch."""

    cond: torch.Tensor
    uncond: torch.Tensor | None = None


class Session(abc.ABC):
    """Model state for one batch of prompts; created by `Backbone.start`, driven by the loop."""

    #: number of generation rows
    batch: int
    #: the layout every row's generated span follows
    layout: TokenLayout
    #: where the model runs: the loop builds its tensors and random generator here (cpu if unset)
    device: torch.device
    #: True when `forward` honours `Window.attention` (needed by proposals that place slots)
    supports_attention: bool = False

    @abc.abstractmethod
    def forward(self, window: Window) -> Scores:
        """Run ONE forward pass over `window`, append its inputs to the cache, return the logits."""

    @abc.abstractmethod
    def crop(self, n: int) -> None:
        """Drop the last `n` slots of every row's cache (n >= 0)."""

    def compact(self, index: torch.Tensor) -> bool:
        """Rebuild the span cache from the slots `index` (Long[B, S']: row b's new slot j is its old
        slot index[b, j]); return False if this session cannot, and the loop keeps the holes.

        Cached keys carry their own positions, so moving a slot changes nothing but the cache's
        length: every later pass attends over fewer slots.
        """
        return False


class Backbone(abc.ABC):
    """A model family instance the loop can decode with."""

    #: registry name, e.g. "toy", "chameleon", "emu3"
    name: str
    vocab_size: int
    #: sampling settings of the family's reference generator
    default_sampling: SamplingConfig = SamplingConfig()
    #: a prompt the backbone accepts, for measurements where any prompt will do
    example_prompt: str = "a photo"
    #: prompts typical of what users ask, one row each in the cost profile's calibration decodes
    #: (how many tokens a pass commits depends on the prompt); empty: `example_prompt`, twice
    calibration_prompts: tuple[str, ...] = ()

    @abc.abstractmethod
    def start(self, prompts: Sequence[str], sampling: SamplingConfig, **options: Any) -> Session:
        """Tokenise `prompts` (plus the CFG branch when `sampling.uses_cfg`) and return a session.

        Must not run the model: the first `Session.forward` is the prefill, counted by the loop.
        Raises a `ConfigError` for an empty prompt or an option the family cannot honour.
        """

    def embed_dim(self) -> int | None:
        """Width of the input embeddings, or None if the model cannot take noisy inputs."""
        return None

    def cost_prior(self) -> Any:
        """A `core.cost.CostProfile` measured elsewhere for this model (None: none ships with it).

        A decode that sizes its window automatically on a machine without a measured profile
        starts from it at once, its seconds rescaled by the passes it observes here, instead of
        measuring first (`pardecode.planning.profile_for`)."""
        return None

    def noise_ready(self) -> bool:
        """True when the model was fine-tuned to read noisy inputs (needed by SJD2)."""
        return False

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """Float[..., D] normalised embeddings of tokens (the x0 targets of denoising)."""
        raise NotImplementedError(f"backbone {self.name!r} has no noise conditioning")

    def image_codebook(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(token ids Long[K], embeddings Float[K, D]) of the image codebook, or None if there is none.

        Row k is the latent vector (VQ codebook entry) the image decoder turns token ids[k] into:
        tokens close in this space decode to similar image patches, which is what latent-
        neighbourhood acceptance rules (LANTERN, GSD) rely on. Implementations compute it once.
        """
        return None

    def images(self, tokens: torch.Tensor, session: Session) -> list[Any] | None:
        """Decode Long[B, length] span tokens to images, or None if this backbone has no decoder."""
        return None
