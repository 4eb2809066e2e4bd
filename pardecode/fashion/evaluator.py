"""Quality of generated Fashion-MNIST-like images, judged by a small CNN trained on the real data.

Two numbers per set of generated images and the classes they were asked for:
- prompt agreement: the fraction the classifier assigns to the requested class;
- Fréchet distance between Gaussians fitted to the classifier's 64-dim penultimate features of the
  generated images and of real TEST images (an FID on a domain-appropriate feature extractor).

Fréchet distance is biased upwards at small sample sizes, so compare a generated set only with the
real-data spread at the same n (`Evaluator.reference_spread`). Reproduce the shipped weights with
`python -m pardecode.fashion.evaluator train`; see assets/EVALUATOR.md for the figures.

This module ties the pieces together: `classifier` (the CNN, the images it accepts, its weights
file), `classifier_training`, `frechet` (the distance and its Gaussian statistics) and
`evaluator_cli` (the `python -m` command and its tables); their public names import from here too.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import attrs
import numpy as np
import torch

from . import CLASS_NAMES, data
from .classifier import (
    DEFAULT_WEIGHTS,
    FORMAT,
    IMAGE_SIZE,
    N_CLASSES,
    ClassesLike,
    ClassifierConfig,
    FashionClassifier,
    ImagesLike,
    _check,
    _is_int,
    as_classes,
    as_images,
    load_classifier,
    save_classifier,
)
from .classifier_training import TrainConfig, train_classifier
from .frechet import frechet_distance, frechet_distance_from_stats, gaussian_stats

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_WEIGHTS",
    "FORMAT",
    "IMAGE_SIZE",
    "N_CLASSES",
    "REFERENCES",
    "ClassesLike",
    "ClassifierConfig",
    "Evaluator",
    "FashionClassifier",
    "ImagesLike",
    "QualityReport",
    "ReferenceSpread",
    "TrainConfig",
    "as_classes",
    "as_images",
    "default_evaluator",
    "evaluate",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "load_classifier",
    "prompt_agreement",
    "save_classifier",
    "train_classifier",
]

REFERENCES = ("test", "train")


@attrs.frozen
class QualityReport:
    """Quality of one set of generated images against real reference images."""

    n_images: int
    prompt_agreement: float  # fraction classified as the requested class
    frechet_distance: float  # vs the reference features; compare only with the real spread at n_images
    n_reference: int


@attrs.frozen
class ReferenceSpread:
    """What real TEST images score at sample size n: disjoint subsets, each against the rest."""

    n: int
    repeats: int
    n_reference: int  # reference size of each subset (the other test images)
    frechet_distances: tuple[float, ...]
    prompt_agreements: tuple[float, ...]

    @property
    def frechet_mean(self) -> float:
        return float(np.mean(self.frechet_distances))

    @property
    def frechet_std(self) -> float:
        return float(np.std(self.frechet_distances, ddof=1)) if self.repeats > 1 else 0.0

    @property
    def agreement_mean(self) -> float:
        return float(np.mean(self.prompt_agreements))

    @property
    def agreement_std(self) -> float:
        return float(np.std(self.prompt_agreements, ddof=1)) if self.repeats > 1 else 0.0


@attrs.define
class Evaluator:
    """A trained classifier plus the real-data features it compares generated images with."""

    model: FashionClassifier
    metadata: dict[str, Any] = attrs.field(factory=dict)
    batch_size: int = 1000
    data_dir: str | os.PathLike | None = None
    _reference_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self):
        _check(
            _is_int(self.batch_size) and self.batch_size >= 1,
            f"batch_size must be an integer >= 1, got {self.batch_size!r}",
        )
        self.model.eval()

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> Evaluator:
        """Load classifier weights (default: the shipped assets/classifier.safetensors)."""
        model, metadata = load_classifier(path or DEFAULT_WEIGHTS)
        return cls(model, metadata, data_dir=data_dir)

    @torch.inference_mode()
    def _run(self, images: ImagesLike) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_images(images)
        feats = [self.model.features(chunk) for chunk in x.split(self.batch_size)] or [
            torch.empty(0, self.model.config.feature_dim)
        ]
        features = torch.cat(feats)
        return features, self.model.classify(features)

    def features(self, images: ImagesLike) -> torch.Tensor:
        """Float[N, 64] penultimate features."""
        return self._run(images)[0]

    def logits(self, images: ImagesLike) -> torch.Tensor:
        """Float[N, 10] class logits."""
        return self._run(images)[1]

    def predict(self, images: ImagesLike) -> torch.Tensor:
        """Long[N] predicted classes."""
        return self._run(images)[1].argmax(dim=1)

    def prompt_agreement(self, images: ImagesLike, classes: ClassesLike) -> float:
        """Fraction of images classified as the class they were asked for."""
        x = as_images(images)
        _check(len(x) > 0, "prompt_agreement needs at least one image, got 0")
        wanted = as_classes(classes, len(x))
        return float((self.predict(x) == wanted).double().mean())

    def reference_features(self, reference: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """(features Float[M, 64], labels Long[M]) of a real split, computed once per evaluator."""
        _check(reference in REFERENCES, f"reference must be one of {list(REFERENCES)}, got {reference!r}")
        if reference not in self._reference_cache:
            images, labels = data.load(reference, self.data_dir)
            self._reference_cache[reference] = (self.features(images), torch.from_numpy(labels.astype(np.int64)))
        return self._reference_cache[reference]

    def evaluate(self, images: ImagesLike, classes: ClassesLike, reference: str = "test") -> QualityReport:
        """Prompt agreement and Fréchet distance to the real `reference` split's features."""
        x = as_images(images)
        n = len(x)
        _check(n >= 2, f"evaluate needs at least 2 images to fit a Gaussian, got {n}")
        wanted = as_classes(classes, n)
        ref_features, _ = self.reference_features(reference)
        features, logits = self._run(x)
        agreement = float((logits.argmax(dim=1) == wanted).double().mean())
        return QualityReport(
            n_images=n,
            prompt_agreement=agreement,
            frechet_distance=frechet_distance(features, ref_features),
            n_reference=len(ref_features),
        )

    def reference_spread(self, n: int, repeats: int = 10, seed: int = 0) -> ReferenceSpread:
        """Scores of `repeats` disjoint random subsets of n real TEST images, each against the rest.

        This is the yardstick for a generated set of the same n: Fréchet distance shrinks with n, so
        only same-n comparisons are meaningful.
        """
        features, labels = self.reference_features("test")
        total = len(features)
        _check(_is_int(n) and n >= 2, f"n must be an integer >= 2, got {n!r}")
        _check(_is_int(repeats) and repeats >= 1, f"repeats must be an integer >= 1, got {repeats!r}")
        _check(
            n * repeats <= total and total - n >= 2,
            f"n * repeats disjoint subsets must fit in the {total} test images, got n={n}, repeats={repeats}",
        )
        _check(_is_int(seed) and seed >= 0, f"seed must be an integer >= 0, got {seed!r}")
        order = torch.from_numpy(np.random.default_rng(seed).permutation(total))
        with torch.inference_mode():
            correct = self.model.classify(features).argmax(dim=1) == labels
        distances, agreements = [], []
        for r in range(repeats):
            mask = torch.zeros(total, dtype=torch.bool)
            mask[order[r * n : (r + 1) * n]] = True
            distances.append(frechet_distance(features[mask], features[~mask]))
            agreements.append(float(correct[mask].double().mean()))
        return ReferenceSpread(n, repeats, total - n, tuple(distances), tuple(agreements))


@functools.lru_cache(maxsize=1)
def default_evaluator() -> Evaluator:
    """The shipped evaluator, loaded once per process (its test-set features are cached with it)."""
    return Evaluator.load()


def prompt_agreement(images: ImagesLike, classes: ClassesLike) -> float:
    """`Evaluator.prompt_agreement` with the shipped classifier."""
    return default_evaluator().prompt_agreement(images, classes)


def evaluate(images: ImagesLike, classes: ClassesLike, reference: str = "test") -> QualityReport:
    """`Evaluator.evaluate` with the shipped classifier."""
    return default_evaluator().evaluate(images, classes, reference)


if __name__ == "__main__":  # the command lives in `evaluator_cli` (which imports this module)
    import runpy

    runpy.run_module("pardecode.fashion.evaluator_cli", run_name="__main__")
