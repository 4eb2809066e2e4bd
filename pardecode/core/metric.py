"""The interface of an image-quality metric, as a plugin registers it (`pardecode_register_metrics`).

A metric scores generated images against their prompts (and the classes they were asked for, where a
backbone's domain has classes) and returns named numbers. Its `variant` says exactly what was
computed (library, feature model, resolution, reference, prompt prefix): numbers from two variants
are not comparable, so reports print the variant next to every number.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any


class Metric(abc.ABC):
    """Named numbers from generated images. Factories stay cheap: models load on the first `score`."""

    #: the registered name (set by the implementation, e.g. "fid")
    name: str = ""

    @property
    @abc.abstractmethod
    def variant(self) -> str:
        """One line naming what is computed, e.g. "torchmetrics 1.9 FID, InceptionV3 pool3 2048-d, 299x299"."""

    @abc.abstractmethod
    def score(
        self, images: Sequence[Any], prompts: Sequence[str], classes: Sequence[int | None] | None = None
    ) -> dict[str, float]:
        """Named numbers of `images` (PIL images or uint8 arrays [N, H, W, C] / [H, W, C]) made for `prompts`."""
