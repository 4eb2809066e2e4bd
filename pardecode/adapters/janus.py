"""Janus / Janus-Pro text-to-image (transformers' `JanusForConditionalGeneration`).

Quirks owned here: image tokens live in a vocabulary of their own (the VQ codebook), embedded by
`generation_embeddings` + `generation_aligner` and scored by `generation_head` rather than the text
`lm_head`; the span is a bare rows x cols grid (no end-of-line or end tokens, so every codebook entry
is allowed everywhere: an `ImageGridLayout` without a mask); the prompt is the DeepSeek chat format
closed by <begin_of_image>; the unconditional row is the prompt with every token but bos and
<begin_of_image> replaced by the pad token (same length, all attended), as Janus' own generator does.
The image size is fixed by the checkpoint (384 px, 24 x 24 tokens for Janus-Pro).
Janus-1.3B and Janus-Pro share weights' layout but not their prompt roles (`User` vs `<|User|>`);
the variant is read from the checkpoint's name unless the style names it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import torch

from ..core.config import SamplingConfig
from ..core.errors import ConfigError
from ..core.layout import ImageGridLayout
from . import hf

#: the reference generators' prompts: DeepSeek's SFT format with an empty system prompt, whose roles
#: are "<|User|>"/"<|Assistant|>" in Janus-Pro's examples and "User"/"Assistant" in Janus-1.3B's
TEMPLATES = {
    "janus-pro": "<|User|>: {prompt}\n\n<|Assistant|>:",
    "janus-1.3b": "User: {prompt}\n\nAssistant:",
}
DEFAULT_VARIANT = "janus-pro"
REFERENCE_TEMPLATE = TEMPLATES[DEFAULT_VARIANT]
#: the original layout (deepseek-ai/Janus*: remote code)
ORIGINAL_LAYOUT = {
    "multi_modality": (
        "remote code that transformers does not read. Use a transformers conversion (e.g. deepseek-community/"
        "Janus-Pro-7B or Janus-Pro-1B), or convert this one with transformers' "
        "src/transformers/models/janus/convert_janus_weights_to_hf.py (in the transformers source tree), "
        "then pass path= to the converted directory"
    ),
}


def variant_of(root: Path) -> str | None:
    """The Janus variant a checkpoint directory's name (or a hub cache path around it) spells, if any."""
    for part in reversed(root.resolve().parts):
        if re.search(r"janus[-_]?pro", part, re.IGNORECASE):
            return "janus-pro"
        if re.search(r"janus[-_]?1\.3b", part, re.IGNORECASE):
            return "janus-1.3b"
    return None


@attrs.frozen
class JanusStyle:
    """The reference generator's prompt format and sampling settings, each overridable.

    `variant` ("janus-pro" or "janus-1.3b") picks the reference prompt roles; None reads it from the
    checkpoint's name, and Janus-Pro's when the name does not say. `prompt_template` overrides both.
    """

    variant: str | None = None
    prompt_template: str | None = None
    cfg_scale: float = 5.0
    top_k: int = 0

    def __attrs_post_init__(self):
        if self.variant is not None and self.variant not in TEMPLATES:
            raise ConfigError(f"variant must be one of {sorted(TEMPLATES)}, got {self.variant!r}")
        if self.prompt_template is not None and (
            not isinstance(self.prompt_template, str) or "{prompt}" not in self.prompt_template
        ):
            raise ConfigError(f"prompt_template must contain '{{prompt}}', got {self.prompt_template!r}")
        SamplingConfig(top_k=self.top_k, cfg_scale=self.cfg_scale)

    @property
    def template(self) -> str:
        """The prompt template in use."""
        return self.prompt_template or TEMPLATES[self.variant or DEFAULT_VARIANT]


class JanusBackbone(hf.StyledBackbone):
    """A Janus generator: Llama body, image-generation embeddings and head, VQ decoder."""

    family = "janus"
    model_types = ("janus",)
    foreign_layouts = ORIGINAL_LAYOUT
    start_options = ("size",)

    def __init__(
        self, model: Any, tokenizer: Any, style: JanusStyle | None = None, *, name: str = "janus", static: bool = False
    ):
        text_config = model.config.text_config
        vq = model.model.vqmodel
        super().__init__(
            body=model.model.language_model,
            head=model.model.generation_head,
            tokenizer=tokenizer,
            context=text_config.max_position_embeddings,
            pad_id=self._pad(tokenizer, text_config),
            vocab_size=vq.config.num_embeddings,
            span_embed=model.prepare_embeddings_for_image_generation,
            static=static,
        )
        self.model, self.name, self.style = model.eval(), name, style or JanusStyle()
        self.default_sampling = SamplingConfig(temperature=1.0, top_k=self.style.top_k, cfg_scale=self.style.cfg_scale)
        self.image_tokens = torch.arange(self.vocab_size)
        self.rows, self.cols = (int(d) for d in vq.quantize.quant_state_dims)
        self.pixels_per_token = 2 ** (len(vq.config.channel_multiplier) - 1)
        self.size = (self.cols * self.pixels_per_token, self.rows * self.pixels_per_token)
        if tokenizer.bos_token_id is None:
            raise ConfigError("the Janus tokenizer defines no bos_token_id")
        boi = getattr(tokenizer, "boi_token", None)
        self.boi_id = hf.token_id(tokenizer, boi if isinstance(boi, str) else "<begin_of_image>")
        self.no_images_reason = None

    @staticmethod
    def _pad(tokenizer: Any, text_config: Any) -> int:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else text_config.pad_token_id
        if pad is None:
            raise ConfigError("the Janus tokenizer defines no pad token (the unconditional rows are made of it)")
        return int(pad)

    @classmethod
    def checkpoint_style(cls, root: Path, style: JanusStyle | None) -> JanusStyle:
        style = style or JanusStyle()
        return style if style.variant is not None else attrs.evolve(style, variant=variant_of(root))

    @classmethod
    def transformers_classes(cls) -> tuple[type, type]:
        from transformers import JanusConfig, JanusForConditionalGeneration

        return JanusConfig, JanusForConditionalGeneration

    def encode(self, prompts: list[str], sampling: SamplingConfig, size: Any = None) -> hf.Encoded:
        if size is not None and (not isinstance(size, (tuple, list)) or tuple(size) != self.size):
            raise ConfigError(
                f"size {size!r} is not producible: this Janus checkpoint generates {self.size[0]}x{self.size[1]} "
                "images only"
            )
        texts = [self.style.template.format(prompt=p) for p in prompts]
        bos = self.tokenizer.bos_token_id
        cond = [[bos, *ids, self.boi_id] for ids in hf.tokenize(self.tokenizer, texts)]
        uncond = [[bos] + [self.pad_id] * (len(r) - 2) + [self.boi_id] for r in cond] if sampling.uses_cfg else None
        return hf.Encoded(cond=cond, uncond=uncond, layout=self.layout())

    def layout(self) -> ImageGridLayout:
        """rows x cols codebook entries, nothing else: strategies see the grid, no token is masked."""
        return ImageGridLayout(self.rows, self.cols, self.image_tokens, self.vocab_size)

    def image_codebook(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The VQ codebook: image token ids are its row indices; computed once."""
        if not hasattr(self, "_codebook"):
            table = self.model.model.vqmodel.quantize.embedding.weight.detach().float().cpu().clone()
            self._codebook = (torch.arange(len(table)), table)
        return self._codebook

    def images(self, tokens: torch.Tensor, session: hf.HFSession) -> list[Any]:
        with torch.inference_mode():
            pixels = self.model.decode_image_tokens(tokens.to(self.device))  # [B, H, W, C] in [-1, 1]
        return hf.to_pil(pixels.permute(0, 3, 1, 2), value_range=(-1.0, 1.0))

    def grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Long[B, rows, cols] codebook ids of Long[B, rows*cols] span tokens."""
        return tokens.reshape(-1, self.rows, self.cols)
