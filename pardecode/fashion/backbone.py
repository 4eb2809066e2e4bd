"""The default model as a backbone: the Chameleon adapter, plus a refusal of prompts it cannot draw
and its own image decoder, the patch codebook.

The model knows ten garments, each under a few phrasings; any other prompt ("a cat") would still
decode, into some garment, so it is refused with the accepted phrasings instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..adapters.chameleon import ChameleonBackbone, DecoderFile, ImageDecoder
from ..adapters.hf import Encoded, check_prompts
from ..core.config import SamplingConfig
from ..core.cost import CostProfile
from ..core.errors import ConfigError
from . import vocab
from .tokenizer import PatchTokenizer


def read_patch_codebook(path: Path) -> ImageDecoder:
    """The decoder of a patch codebook file (`PatchTokenizer.save`): codebook indices to pixels."""
    return PatchTokenizer.load(path).decode


def check_known(prompts: list[str], name: str) -> None:
    """A ConfigError naming the first prompt that asks for no garment the model was trained on."""
    for prompt in check_prompts(prompts):
        if vocab.class_of_prompt(prompt) is None:
            nouns = ", ".join(
                repr(p) for phrasings in vocab.PROMPTS_BY_CLASS.values() for p in phrasings[: len(phrasings) // 4]
            )
            raise ConfigError(
                f"the {name!r} model does not know the prompt {prompt!r}; it draws the ten Fashion-MNIST "
                f"classes, asked for as {nouns} (optionally 'a photo of ...', 'a picture of ...', 'an image of ...')"
            )


class FashionBackbone(ChameleonBackbone):
    """The shipped Fashion-MNIST text-to-image model: a Chameleon backbone that knows ten prompts' worth."""

    decoder_file = DecoderFile(".safetensors", "patch codebook", read_patch_codebook)
    example_prompt = "a sneaker"
    calibration_prompts = tuple(phrasings[0] for phrasings in vocab.PROMPTS_BY_CLASS.values())  # one per class

    #: the cost profile measured for this checkpoint when it was shipped (`cost_prior`), if any
    prior_file: Path | None = None

    def cost_prior(self) -> CostProfile | None:
        """The profile shipped beside the weights (`pardecode profile --write-prior`): a first
        decode on a new machine starts from it instead of measuring."""
        if self.prior_file is None or not self.prior_file.is_file():
            return None
        return CostProfile(**json.loads(self.prior_file.read_text()))

    def encode(self, prompts: list[str], sampling: SamplingConfig, size: Any = None) -> Encoded:
        check_known(prompts, self.name)
        return super().encode(prompts, sampling, size=size)
