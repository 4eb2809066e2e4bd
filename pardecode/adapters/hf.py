"""Shared machinery of backbones built on transformers causal language models.

A family adapter (Chameleon, Emu3, ...) only turns prompts into token rows and a `TokenLayout`
(`HFBackbone.encode`); the backbone classes here do the rest, with two neighbours: `hf_loading`
reads checkpoints (dtype, device, placement, tokenizer, weights) and `hf_session` runs a batch at
decode time (padding, guidance rows, positions, masks, the KV cache). Their public names import
from here too.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import torch
from torch import nn

from ..core.backbone import Backbone
from ..core.config import SamplingConfig
from ..core.errors import CheckpointError, ConfigError
from ..core.noise import NoiseConditioning
from .hf_loading import (
    AUTO,
    DEVICE_MAPS,
    DTYPES,
    accelerate_available,
    build_random,
    checkpoint_dir,
    choose_dtype,
    load_pretrained,
    load_tokenizer,
    one_line,
    parse_device,
    parse_dtype,
    placement,
    read_config,
    safetensors_file,
    stored_dtype,
)
from .hf_session import Encoded, HFSession, additive_mask, cache_keyword, left_pad, placed_mask
from .hf_static import StaticSession

__all__ = [
    "AUTO",
    "DEVICE_MAPS",
    "DTYPES",
    "Encoded",
    "HFBackbone",
    "HFSession",
    "StaticSession",
    "StyledBackbone",
    "accelerate_available",
    "additive_mask",
    "build_random",
    "cache_keyword",
    "check_pixel_size",
    "check_prompts",
    "checkpoint_dir",
    "choose_dtype",
    "left_pad",
    "load_pretrained",
    "load_tokenizer",
    "one_line",
    "parse_device",
    "parse_dtype",
    "placed_mask",
    "placement",
    "read_config",
    "safetensors_file",
    "stored_dtype",
    "to_pil",
    "token_id",
    "tokenize",
]

_B = TypeVar("_B", bound="HFBackbone")
#: graphs a static compiled forward may hold (window buckets x batch sizes x cache capacities)
RECOMPILE_LIMIT = 64


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without the special tokens the tokenizer would add on its own."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def token_id(tokenizer: Any, name: str) -> int:
    """The id of the single token spelled `name`; a CheckpointError if the vocabulary lacks it."""
    tid = tokenizer.convert_tokens_to_ids(name)
    if tid is None or tid == tokenizer.unk_token_id and name != tokenizer.unk_token:
        raise CheckpointError(f"the tokenizer has no token {name!r}")
    return int(tid)


def check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise ConfigError("prompts must be a sequence of strings, got a single string; wrap it in a list")
    prompts = list(prompts)
    if not prompts:
        raise ConfigError("prompts must hold at least one prompt, got an empty sequence")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"prompt {i} must be a non-empty string, got {p!r}")
    return prompts


def check_pixel_size(size: Any) -> None:
    """A ConfigError unless `size` is (width, height) in whole positive pixels."""
    if not (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ConfigError(f"size must be (width, height) in pixels, got {size!r}")


class HFBackbone(Backbone):
    """A transformers decoder `body` (returns last_hidden_state) + `head` (lm_head) image generator.

    Subclasses implement `encode` (the family's prompt template, CFG rows and layout) and may
    override `images`; they list the `start` options they accept in `start_options` and set
    `image_tokens` (Long[K], the ids an image cell may hold).

    A checkpoint fine-tuned for denoising strategies ships a `NoiseConditioning` module
    (`noise_conditioning.safetensors`); with it the backbone is `noise_ready` and reads noisy windows.
    """

    start_options: tuple[str, ...] = ()
    image_tokens: torch.Tensor
    noise: NoiseConditioning | None = None

    def __init__(
        self,
        *,
        body: nn.Module,
        head: nn.Module,
        tokenizer: Any,
        context: int,
        pad_id: int,
        vocab_size: int | None = None,
        span_embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
        static: bool = False,
    ):
        """`head` maps hidden states to `vocab_size` logits (default: its out_features); `span_embed`
        embeds generated tokens when they live in a vocabulary of their own (Janus); `static` runs
        the static pass (`hf_static.StaticSession`: fixed shapes after the prompt, for `compile`)."""
        if not isinstance(static, bool):
            raise ConfigError(f"static must be true or false, got {static!r}")
        self.static = static
        self.body, self.head, self.tokenizer = body.eval(), head.eval(), tokenizer
        self.context = context
        self.pad_id = pad_id
        self.device = next(body.parameters()).device
        self.vocab_size = vocab_size if vocab_size is not None else head.out_features
        self.span_embed = span_embed
        self._normaliser: NoiseConditioning | None = None

    @abc.abstractmethod
    def encode(self, prompts: list[str], sampling: SamplingConfig, **options: Any) -> Encoded:
        """Token rows (cond, and uncond when `sampling.uses_cfg`) and the layout for `prompts`."""

    def start(self, prompts: Sequence[str], sampling: SamplingConfig | None = None, **options: Any) -> HFSession:
        prompts = check_prompts(prompts)
        sampling = sampling or self.default_sampling
        unknown = sorted(set(options) - set(self.start_options))
        if unknown:
            allowed = ", ".join(self.start_options) or "none"
            raise ConfigError(f"unknown option(s) {unknown} for backbone {self.name!r}; allowed: {allowed}")
        encoded = self.encode(prompts, sampling, **options)
        if not sampling.uses_cfg:
            encoded = attrs.evolve(encoded, uncond=None)
        self.check_context(encoded)
        session = StaticSession if self.static else HFSession
        return session(self.body, self.head, encoded, self.pad_id, self.device, self.noise, self.span_embed)

    # --- noise conditioning (denoising strategies) ------------------------------------------
    def with_checkpoint_noise(self: _B, root: Path) -> _B:
        """This backbone with the noise conditioning of checkpoint `root` attached, if it ships one.

        Only SJD2-fine-tuned checkpoints do; without one the backbone reads no noisy inputs.
        """
        self.attach_noise(NoiseConditioning.load(root))
        return self

    def attach_noise(self, noise: NoiseConditioning | None) -> None:
        """Use `noise` to read noisy inputs (None detaches); its width must match the embeddings."""
        if noise is not None:
            if noise.dim != self.embed_dim():
                raise CheckpointError(
                    f"noise conditioning of width {noise.dim} for embeddings of width {self.embed_dim()}"
                )
            noise = noise.to(self.device).eval()
        self.noise = noise
        self._normaliser = noise

    def span_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Float[..., D] input embeddings of generated-span tokens."""
        return (self.span_embed or self.body.get_input_embeddings())(tokens.to(self.device))

    def embed_dim(self) -> int:
        return self.body.get_input_embeddings().embedding_dim

    def noise_ready(self) -> bool:
        return self.noise is not None

    def normaliser(self) -> NoiseConditioning:
        """The module whose mean/std define the normalised embedding space.

        Without fine-tuned conditioning, the statistics of the image-token embedding rows (what a
        fine-tune starts from).
        """
        if self._normaliser is None:
            with torch.no_grad():
                table = self.span_embedding(self.image_tokens)
            self._normaliser = NoiseConditioning.for_embeddings(table).to(self.device).eval()
        return self._normaliser

    @torch.no_grad()
    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.normaliser().normalize(self.span_embedding(tokens))

    def compile(self) -> None:
        """Run the decoder body's forward through `torch.compile` (graph capture; opt-in).

        Eager pass (`static=False`): measured on the default model on a 2-core CPU, about 40 s of
        compilation, a recompilation at every new window width and cache length (the dynamic KV
        cache changes shapes each pass), and no faster pass at 1 to 17 positions.

        Static pass (`static=True`): every pass after the prompt has fixed shapes, so the forward is
        compiled with `dynamic=False`, one graph per window bucket (`static_kv.WINDOW_BUCKETS`), with
        CUDA graphs on a GPU (`mode="reduce-overhead"`) and inductor's default on a CPU; the prompt
        pass runs the eager forward. Raises dynamo's recompile limit to `RECOMPILE_LIMIT` (a
        process-wide setting) so that many graphs stay compiled. Measured on the default model on
        one CPU thread: 7 to 34% less per pass than eager, 12 to 27 s of compilation per bucket
        and batch (`ar` at batch 1: 0.39 s a decode against 0.62 s eager), so it stays opt-in;
        untested on a GPU. Figures: docs/design.md, "The static pass".

        The cache keyword is read from the eager forward first.
        """
        self.body._pardecode_cache_keyword = cache_keyword(self.body)  # a wrapper may hide the signature
        if not self.static:
            self.body.forward = torch.compile(self.body.forward, dynamic=True)
            return
        eager = getattr(self.body, "_pardecode_eager_forward", None) or self.body.forward
        self.body._pardecode_eager_forward = eager
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        # one graph per bucket, batch and cache capacity: more than dynamo's default of 8 per function
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        self.body.forward = torch.compile(eager, dynamic=False, mode=mode)

    def check_context(self, encoded: Encoded) -> None:
        """A ConfigError unless every prompt row plus the generated span fits the model's context."""
        longest = max(len(r) for r in encoded.cond + (encoded.uncond or []))
        span = encoded.layout.length
        if longest >= self.context:
            raise ConfigError(
                f"a prompt of {longest} tokens does not fit the context of {self.context} positions; shorten the prompt"
            )
        if longest + span > self.context:
            raise ConfigError(
                f"the image needs {span} tokens after a {longest}-token prompt, more than the context of "
                f"{self.context} positions; request a smaller size (at most {self.context - longest} tokens)"
            )


class StyledBackbone(HFBackbone):
    """A family built as `cls(model, tokenizer, style, name=...)` (Emu3, Janus): its checkpoint
    constructors, written once. Subclasses name the family and its transformers classes."""

    family: ClassVar[str]  # also the default registry name
    model_types: ClassVar[tuple[str, ...]]  # config.model_type values a checkpoint may declare
    #: model_type of the family's original (non-transformers) layout -> what to do with such a checkpoint
    foreign_layouts: ClassVar[dict[str, str]] = {}

    @classmethod
    def transformers_classes(cls) -> tuple[type, type]:
        """(config class, model class), imported on first use."""
        raise NotImplementedError

    @classmethod
    def checkpoint_style(cls, root: Path, style: Any) -> Any:
        """`style` completed with what checkpoint `root` says about itself (default: unchanged)."""
        return style

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        tokenizer: Any = None,
        dtype: str | torch.dtype = AUTO,
        device: str | torch.device = AUTO,
        device_map: Any = None,
        style: Any = None,
        name: str | None = None,
        static: bool = False,
    ):
        """The checkpoint in `path` (a directory), with its noise conditioning if it ships one;
        `static` as for `HFBackbone`."""
        root, tokenizer, model = load_pretrained(
            path,
            family=cls.family,
            model_types=cls.model_types,
            model_class=cls.transformers_classes()[1],
            tokenizer=tokenizer,
            dtype=dtype,
            device=device,
            device_map=device_map,
            foreign=cls.foreign_layouts,
        )
        style = cls.checkpoint_style(root, style)
        return cls(model, tokenizer, style, name=name or cls.family, static=static).with_checkpoint_noise(root)

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        tokenizer: Any,
        style: Any = None,
        dtype: str | torch.dtype = AUTO,
        device: str | torch.device = AUTO,
        name: str | None = None,
        static: bool = False,
    ):
        """A randomly initialised model of `config` (tiny models for tests, experiments)."""
        config_class, model_class = cls.transformers_classes()
        tokenizer, model = build_random(
            config,
            family=cls.family,
            config_class=config_class,
            model_class=model_class,
            tokenizer=tokenizer,
            dtype=dtype,
            device=device,
        )
        return cls(model, tokenizer, style, name=name or cls.family, static=static)


def to_pil(images: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> list[Any]:
    """PIL images from Float[N, H, W] (grey) or Float[N, C, H, W] pixels in `value_range`.

    Anything that is not a tensor (a decoder that already returns PIL images) passes through.
    """
    if not isinstance(images, torch.Tensor):
        return list(images)
    from PIL import Image

    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1).mul(255).round().to(torch.uint8)
    if x.ndim == 4:
        x = x.permute(0, 2, 3, 1)
        if x.shape[-1] == 1:
            x = x[..., 0]
    if x.ndim not in (3, 4):
        raise ConfigError(f"an image decoder must return [N, H, W] or [N, C, H, W] pixels, got {tuple(images.shape)}")
    return [Image.fromarray(a.numpy()) for a in x]
