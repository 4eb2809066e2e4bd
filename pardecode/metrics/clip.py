"""CLIP score through transformers' CLIPModel / CLIPProcessor.

Per image: 100 * max(cos(image embedding, text embedding), 0), the formula of torchmetrics'
CLIPScore; the metric is the mean over images. The text is `prefix + prompt` (e.g. prefix "a photo of "
as some papers use; empty by default), truncated to the model's context. The model comes from
`model=` (a local directory or a hub name already in the local cache; nothing is downloaded unless
`download=true`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.metric import Metric
from .images import as_rgb_batch

DEFAULT_CLIP = "openai/clip-vit-large-patch14"


@functools.lru_cache(maxsize=4)
def _load(model: str, download: bool, device: str):
    from transformers import CLIPModel, CLIPProcessor

    try:
        processor = CLIPProcessor.from_pretrained(model, local_files_only=not download)
        net = CLIPModel.from_pretrained(model, local_files_only=not download).to(device).eval()
    except (OSError, ValueError) as err:  # missing files; a path that is not a hub name
        raise ConfigError(
            f"clip model {model!r} is neither a local directory nor in the local cache "
            f"(pass model= a path, or download=true): {' '.join(str(err).split())[:200]}"
        ) from None
    return net, processor


class CLIPScore(Metric):
    """Mean CLIP score of images against their prompts: 100 * max(cos, 0), as torchmetrics computes it."""

    name = "clip"

    def __init__(
        self,
        *,
        model: str | Path = DEFAULT_CLIP,
        prefix: str = "",
        device: str = "cpu",
        download: bool = False,
        batch: int = 32,
    ):
        if not isinstance(prefix, str):
            raise ConfigError(f"clip prefix must be a string, got {prefix!r}")
        self.model, self.prefix, self.device, self.download, self.batch = str(model), prefix, device, download, batch

    @property
    def variant(self) -> str:
        import transformers

        return (
            f"transformers {transformers.__version__} CLIPModel {self.model}, CLIPProcessor preprocessing, "
            f"100*max(cos,0) mean (torchmetrics CLIPScore formula), text = {self.prefix!r} + prompt"
        )

    def per_image(self, images: Sequence[Any], prompts: Sequence[str]) -> np.ndarray:
        """Float64[N]: each image's CLIP score against its own prompt."""
        import torch

        rgb = as_rgb_batch(images, None)
        if len(rgb) != len(prompts):
            raise ConfigError(f"clip needs one prompt per image, got {len(rgb)} images and {len(prompts)} prompts")
        net, processor = _load(self.model, self.download, self.device)
        scores = []
        with torch.no_grad():
            for start in range(0, len(rgb), self.batch):
                texts = [self.prefix + p for p in prompts[start : start + self.batch]]
                inputs = processor(
                    text=texts,
                    images=list(rgb[start : start + self.batch]),
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                )
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                image = net.get_image_features(pixel_values=inputs["pixel_values"])
                text = net.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))
                image, text = _tensor(image), _tensor(text)
                cos = torch.nn.functional.cosine_similarity(image.double(), text.double(), dim=-1)
                scores.append((100 * cos.clamp(min=0)).cpu().numpy())
        return np.concatenate(scores)

    def score(self, images, prompts, classes=None) -> dict[str, float]:
        return {"clip_score": float(self.per_image(images, prompts).mean())}


def _tensor(output: Any):
    """transformers 5 may return a model output instead of a tensor from get_*_features."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    return pooled if pooled is not None else output[0]
