"""Emu3 text-to-image (transformers' `Emu3ForConditionalGeneration`).

Quirks owned here: the prompt `bos + text + <|image start|>{h}*{w}<|image token|>` with the
reference generator's quality suffix, the negative prompt as the guidance branch, the image span
[rows x (cols visual tokens + <|extra_200|>), EOF, EOI, EOS], and decoding through Emu3's own VQ
decoder. Visual tokens are the `<|visual token......|>` entries of the config's vocabulary map.
Prompts and the size prompt are tokenised one digit per token, as Emu3's own tokenizer (Qwen's
pre-tokeniser) does; the tokenizer rebuilt for the transformers conversion would merge "90" into one.
"""

from __future__ import annotations

import math
import re
from typing import Any

import attrs
import torch

from ..core.config import SamplingConfig
from ..core.errors import ConfigError
from ..core.layout import GridLayout
from . import hf

#: the reference generator's prompt suffix and negative prompt (Emu3's public image-generation example)
REFERENCE_SUFFIX = " masterpiece, film grained, best quality."
REFERENCE_NEGATIVE = (
    "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry."
)
#: one decimal digit: Emu3's tokenizer (Qwen's pre-tokeniser) never merges digits
DIGIT = re.compile(r"(\d)")
#: special token names, used when the tokenizer does not name them itself (attribute in parentheses)
SPECIAL_NAMES = {
    "boi_token": "<|image start|>",
    "image_wrapper_token": "<|image token|>",
    "eoi_token": "<|image end|>",
    "eof_token": "<|extra_201|>",
    "eol_token": "<|extra_200|>",
}


def _str(inst, attribute, value):
    if not isinstance(value, str):
        raise ConfigError(f"{attribute.name} must be a string, got {value!r}")


@attrs.frozen
class Emu3Style:
    """The reference generator's prompt dressing and sampling settings, each overridable."""

    prompt_suffix: str = attrs.field(default=REFERENCE_SUFFIX, validator=_str)
    negative_prompt: str = attrs.field(default=REFERENCE_NEGATIVE, validator=_str)
    #: default image: a square of this many pixels (720 x 720 in the reference)
    image_area: int = 720 * 720
    default_size: tuple[int, int] | None = attrs.field(default=None, converter=lambda v: v if v is None else tuple(v))
    cfg_scale: float = 3.0
    top_k: int = 2048

    def __attrs_post_init__(self):
        if not isinstance(self.image_area, int) or self.image_area < 1:
            raise ConfigError(f"image_area must be a positive number of pixels, got {self.image_area!r}")
        SamplingConfig(top_k=self.top_k, cfg_scale=self.cfg_scale)


def _special_id(tokenizer: Any, role: str) -> int:
    name = getattr(tokenizer, role, None)
    return hf.token_id(tokenizer, name if isinstance(name, str) else SPECIAL_NAMES[role])


#: the original layout (BAAI/Emu3-Gen: remote code, the VQ model in BAAI/Emu3-VisionTokenizer)
ORIGINAL_LAYOUT = {
    "Emu3": (
        "remote code with the VQ model in a separate repository (BAAI/Emu3-VisionTokenizer). Use the "
        "transformers conversion BAAI/Emu3-Gen-hf, or convert this one with transformers' "
        "src/transformers/models/emu3/convert_emu3_weights_to_hf.py (in the transformers source tree), "
        "then pass path= to the converted directory"
    ),
}


class Emu3Backbone(hf.StyledBackbone):
    """An Emu3 generator: text model + lm_head for scoring, the VQ decoder for images."""

    family = "emu3"
    model_types = ("emu3",)
    foreign_layouts = ORIGINAL_LAYOUT
    start_options = ("size", "negative_prompt")

    def __init__(
        self, model: Any, tokenizer: Any, style: Emu3Style | None = None, *, name: str = "emu3", static: bool = False
    ):
        text_config = model.config.text_config
        super().__init__(
            body=model.model.text_model,
            head=model.lm_head,
            tokenizer=tokenizer,
            context=text_config.max_position_embeddings,
            pad_id=text_config.pad_token_id or 0,
            static=static,
        )
        self.model, self.name, self.style = model.eval(), name, style or Emu3Style()
        self.default_sampling = SamplingConfig(temperature=1.0, top_k=self.style.top_k, cfg_scale=self.style.cfg_scale)
        self.spatial_factor = int(model.model.vqmodel.spatial_scale_factor)
        self.image_tokens = torch.tensor(model.model.vocabulary_mapping.image_tokens, dtype=torch.long)
        if not len(self.image_tokens):
            raise ConfigError("the Emu3 config's vocabulary_map names no '<|visual token...|>' tokens")
        for attr in ("bos_token_id", "eos_token_id"):
            if getattr(tokenizer, attr, None) is None:
                raise ConfigError(f"the Emu3 tokenizer defines no {attr}")
        self.ids = {role: _special_id(tokenizer, role) for role in SPECIAL_NAMES}
        self.default_size = self.style.default_size or (self._side(), self._side())
        self.no_images_reason = None

    def _side(self) -> int:
        """Side of the reference square image, a whole number of tokens."""
        return round(math.sqrt(self.style.image_area) / self.spatial_factor) * self.spatial_factor

    @classmethod
    def transformers_classes(cls) -> tuple[type, type]:
        from transformers import Emu3Config, Emu3ForConditionalGeneration

        return Emu3Config, Emu3ForConditionalGeneration

    def grid(self, size: Any) -> tuple[int, int]:
        """(rows, cols) of visual tokens for `size` = (W, H) pixels; a ConfigError if not producible."""
        f = self.spatial_factor
        hf.check_pixel_size(size)
        if size[0] % f or size[1] % f:
            raise ConfigError(
                f"size {size[0]}x{size[1]} is not producible: width and height must be multiples of the "
                f"{f}-pixel token size"
            )
        return size[1] // f, size[0] // f

    def _rows(self, texts: list[str], rows: int, cols: int) -> list[list[int]]:
        tail = [self.ids["boi_token"], *self.size_prompt(rows, cols), self.ids["image_wrapper_token"]]
        return [[self.tokenizer.bos_token_id, *self.tokenize(t), *tail] for t in texts]

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` with every digit a token of its own, as Emu3's own tokenizer splits them
        (its pre-tokeniser isolates each digit; text between digits is tokenised as usual)."""
        pieces = [p for p in DIGIT.split(text) if p]
        return [i for ids in hf.tokenize(self.tokenizer, pieces) for i in ids]

    def size_prompt(self, rows: int, cols: int) -> list[int]:
        """Token ids of "{rows}*{cols}": 9, 0, *, 9, 0 for 90 x 90 tokens."""
        return self.tokenize(f"{rows}*{cols}")

    def encode(
        self, prompts: list[str], sampling: SamplingConfig, size: Any = None, negative_prompt: str | None = None
    ) -> hf.Encoded:
        rows, cols = self.grid(self.default_size if size is None else size)
        cond = self._rows([p + self.style.prompt_suffix for p in prompts], rows, cols)
        uncond = None
        if sampling.uses_cfg:
            negative = self.style.negative_prompt if negative_prompt is None else negative_prompt
            if not isinstance(negative, str):
                raise ConfigError(f"negative_prompt must be a string, got {negative!r}")
            uncond = self._rows([negative] * len(prompts), rows, cols)
        layout = GridLayout(
            rows=rows,
            cols=cols,
            image_tokens=self.image_tokens,
            end_of_line=self.ids["eol_token"],
            end_tokens=(self.ids["eof_token"], self.ids["eoi_token"], self.tokenizer.eos_token_id),
            vocab_size=self.vocab_size,
        )
        return hf.Encoded(cond=cond, uncond=uncond, layout=layout)

    def image_codebook(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The VQ codebook rows of the visual tokens (by the vocabulary map's token -> code index); once."""
        if not hasattr(self, "_codebook"):
            img2bpe = self.model.model.vocabulary_mapping.img2bpe
            codes = torch.tensor(sorted(img2bpe), dtype=torch.long)
            ids = torch.tensor([img2bpe[int(c)] for c in codes], dtype=torch.long)
            table = self.model.model.vqmodel.quantize.embedding.weight.detach().float().cpu()
            keep = codes < len(table)
            self._codebook = (ids[keep], table[codes[keep]].clone())
        return self._codebook

    def images(self, tokens: torch.Tensor, session: hf.HFSession) -> list[Any]:
        layout = session.layout
        with torch.inference_mode():
            pixels = self.model.model.decode_image_tokens(
                image_tokens=tokens.to(self.device), height=layout.rows, width=layout.cols
            )
        return hf.to_pil(pixels, value_range=(-1.0, 1.0))
