"""Image quality for benchmark reports: what a run stores, and who judges it.

A run stores its decoded images as a compact uint8 array (zlib + base64 in the JSON record), so a
report can be rebuilt, or re-judged by a newer evaluator, without decoding again. A `Judge` turns
stored images plus the prompts they were asked for into prompt agreement and a Frechet distance;
backbones without one (no image decoder, or no evaluator for their domain) report "n/a".
"""

from __future__ import annotations

import base64
import functools
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import numpy as np

from ..core.errors import ConfigError


def pack_images(images: Any) -> dict[str, Any]:
    """A JSON-ready compact form of decoded images (tensor, array or PIL list) as uint8[N, H, W, C]."""
    from ..imaging import as_array

    array = as_array(images)
    if array.shape[-1] == 3 and (array == array[..., :1]).all():
        array = array[..., :1]  # grey images decoded as RGB: one channel carries them
    array = np.ascontiguousarray(array)
    return {
        "shape": list(array.shape),
        "dtype": "uint8",
        "zlib_base64": base64.b64encode(zlib.compress(array.tobytes(), 9)).decode("ascii"),
    }


def unpack_images(packed: dict[str, Any]) -> np.ndarray:
    """uint8[N, H, W, C] back from `pack_images`."""
    if packed.get("dtype") != "uint8":
        raise ConfigError(f"stored images must be uint8, got dtype {packed.get('dtype')!r}")
    raw = zlib.decompress(base64.b64decode(packed["zlib_base64"]))
    return np.frombuffer(raw, dtype=np.uint8).reshape(packed["shape"])


@attrs.frozen
class Quality:
    """Quality of one set of images: prompt agreement and Frechet distance on n images."""

    n: int
    prompt_agreement: float
    frechet_distance: float


@attrs.frozen
class Spread:
    """Mean and sample standard deviation of a metric over independent sets (seeds, real subsets)."""

    mean: float
    std: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        values = [float(v) for v in values]
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        return cls(float(np.mean(values)), std, len(values))


class Judge(Protocol):
    """Scores images of a backbone's domain."""

    def accepts(self, prompt: str) -> bool:
        """True if prompts like this one can be scored (the judge knows what they ask for)."""

    def evaluate(self, images: np.ndarray, prompts: Sequence[str]) -> Quality:
        """Quality of uint8[N, H, W, C] images made for `prompts` (one per image), N >= 2."""

    def real_spread(self, n: int) -> tuple[Spread, Spread] | None:
        """(agreement, Frechet distance) of real images in disjoint sets of n: the yardstick at n."""


@attrs.define
class FashionJudge:
    """The default model's evaluator: a Fashion-MNIST classifier's agreement and feature FD."""

    _evaluator: Any = attrs.field(default=None, alias="evaluator")

    @property
    def evaluator(self):
        if self._evaluator is None:
            from ..fashion.evaluator import default_evaluator

            self._evaluator = default_evaluator()
        return self._evaluator

    def accepts(self, prompt: str) -> bool:
        from ..fashion.vocab import class_of_prompt

        return class_of_prompt(prompt) is not None

    def evaluate(self, images: np.ndarray, prompts: Sequence[str]) -> Quality:
        from ..fashion.vocab import class_of_prompt

        gray = images.mean(-1).round().astype(np.uint8) if images.ndim == 4 else images
        report = self.evaluator.evaluate(gray, [class_of_prompt(p) for p in prompts])
        return Quality(report.n_images, report.prompt_agreement, report.frechet_distance)

    def per_image(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(Bool[N] image classified as its prompt's class, Float64[N, D] features): what the pooled
        comparisons of `comparisons` resample."""
        import torch

        from ..fashion.vocab import class_of_prompt

        gray = images.mean(-1).round().astype(np.uint8) if images.ndim == 4 else images
        with torch.inference_mode():
            features = self.evaluator.features(gray)
            predicted = self.evaluator.model.classify(features).argmax(1).numpy()
        wanted = np.array([class_of_prompt(p) for p in prompts])
        return predicted == wanted, features.double().numpy()

    def reference_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the real test images' features (the Fréchet distance's reference)."""
        from ..fashion.evaluator import gaussian_stats

        return gaussian_stats(self.evaluator.reference_features("test")[0])

    def real_spread(self, n: int) -> tuple[Spread, Spread] | None:
        total = len(self.evaluator.reference_features("test")[0])
        repeats = min(10, total // n - 1) if n >= 2 else 0
        if repeats < 2:
            return None
        spread = self.evaluator.reference_spread(n, repeats=repeats, seed=0)
        return Spread.of(spread.prompt_agreements), Spread.of(spread.frechet_distances)


#: backbone registry name -> judge factory; the default model's evaluator judges its images
JUDGES: dict[str, Callable[[], Judge]] = {"fashion": FashionJudge, "fashion-sjd2": FashionJudge}


@functools.cache
def judge_for(backbone: str) -> Judge | None:
    """The judge of a backbone's images (by registry name), or None: quality is then "n/a"."""
    factory = JUDGES.get(backbone)
    return factory() if factory is not None else None
