"""The default model's evaluator as a metric plugin (`fashion`): prompt agreement and Fréchet distance
on the Fashion-MNIST classifier's features, against the real test split.

It computes exactly what the benchmark suites have always reported on the fashion backbones (their
`FashionJudge` runs the same evaluator); classes come from the prompts when not given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.metric import Metric


class FashionMetric(Metric):
    """Prompt agreement and Fréchet distance of 28x28 grey garments, by the shipped classifier."""

    name = "fashion"

    def __init__(self, *, evaluator: Any = None, reference: str = "test"):
        if reference not in ("train", "test"):
            raise ConfigError(f"fashion reference must be 'train' or 'test', got {reference!r}")
        self._evaluator, self.reference = evaluator, reference

    @property
    def evaluator(self):
        if self._evaluator is None:
            from .evaluator import default_evaluator

            self._evaluator = default_evaluator()
        return self._evaluator

    @property
    def variant(self) -> str:
        dim = getattr(getattr(getattr(self._evaluator, "model", None), "config", None), "feature_dim", 64)
        return (
            f"pardecode fashion evaluator: shipped Fashion-MNIST classifier, {dim}-d penultimate features, "
            f"28x28 grey, Fréchet distance against the real {self.reference} split; "
            "agreement = classified as the prompt's class"
        )

    def score(self, images, prompts, classes=None) -> dict[str, float]:
        from .vocab import class_of_prompt

        gray = _gray(images)
        wanted = list(classes) if classes is not None else [class_of_prompt(p) for p in prompts]
        if any(c is None for c in wanted):
            bad = next(p for p, c in zip(prompts, wanted) if c is None)
            raise ConfigError(f"the fashion metric scores Fashion-MNIST garments only; no class for the prompt {bad!r}")
        report = self.evaluator.evaluate(gray, wanted, self.reference)
        return {"prompt_agreement": report.prompt_agreement, "frechet_distance": report.frechet_distance}


def _gray(images: Any) -> np.ndarray:
    """uint8[N, H, W]: grey images as the evaluator reads them (RGB averaged, as the suites always did)."""
    from PIL import Image

    if not isinstance(images, np.ndarray):
        images = np.stack([np.asarray(im.convert("L") if isinstance(im, Image.Image) else im) for im in images])
    return images.mean(-1).round().astype(np.uint8) if images.ndim == 4 else images
