"""Quality of generated Fashion-MNIST-like images, judged by a small CNN trained on the real data.

Two numbers per set of generated images and the classes they were asked for:
- prompt agreement: the fraction the classifier assigns to the requested class;
- Fréchet distance between Gaussians fitted to the classifier's 64-dim penultimate features of the
  generated images and of real TEST images (an FID on a domain-appropriate feature extractor).

Fréchet distance is biased upwards at small sample sizes, so compare a generated set only with the
real-data spread at the same n (`Evaluator.reference_spread`). Reproduce the shipped weights with
`python -m pardecode.fashion.evaluator train`; see assets/EVALUATOR.md for the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Union

import attrs
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from ..core.errors import CheckpointError, ConfigError
from . import CLASS_NAMES, data

IMAGE_SIZE = 28
N_CLASSES = len(CLASS_NAMES)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "assets" / "classifier.safetensors"
FORMAT = "pardecode.fashion.classifier/1"
REFERENCES = ("test", "train")

ImagesLike = Union[torch.Tensor, np.ndarray]
ClassesLike = Union[torch.Tensor, np.ndarray, "list[int]"]
_RANGE_TOLERANCE = 1e-4  # float images may stray this far outside [0, 1] through rounding


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------- configs


@attrs.frozen
class ClassifierConfig:
    """Shape of the classifier: two conv blocks (conv3x3-BN-ReLU-maxpool) and a feature layer."""

    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 64
    n_classes: int = N_CLASSES

    def __attrs_post_init__(self):
        _check(
            isinstance(self.channels, tuple) and len(self.channels) == 2
            and all(_is_int(c) and c >= 1 for c in self.channels),
            f"channels must be a tuple of 2 positive integers, got {self.channels!r}",
        )
        _check(_is_int(self.feature_dim) and self.feature_dim >= 2,
               f"feature_dim must be an integer >= 2, got {self.feature_dim!r}")
        _check(_is_int(self.n_classes) and self.n_classes >= 2,
               f"n_classes must be an integer >= 2, got {self.n_classes!r}")

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ClassifierConfig":
        raw = json.loads(text)
        return cls(channels=tuple(raw["channels"]), feature_dim=raw["feature_dim"], n_classes=raw["n_classes"])


@attrs.frozen
class TrainConfig:
    """The training recipe. Augmentation (random shifts, horizontal flips) costs nothing on CPU and
    keeps the classifier from keying on exact pixel positions that generators get slightly wrong."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_shift: int = 2
    flip: bool = True

    def __attrs_post_init__(self):
        _check(_is_int(self.epochs) and self.epochs >= 1, f"epochs must be an integer >= 1, got {self.epochs!r}")
        _check(_is_int(self.batch_size) and self.batch_size >= 1,
               f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        _check(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
               f"lr must be a finite number > 0, got {self.lr!r}")
        _check(isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
               and self.weight_decay >= 0, f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        _check(_is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        _check(_is_int(self.max_shift) and 0 <= self.max_shift < IMAGE_SIZE // 2,
               f"max_shift must be an integer in [0, {IMAGE_SIZE // 2 - 1}] (0 = off), got {self.max_shift!r}")
        _check(isinstance(self.flip, bool), f"flip must be a bool, got {self.flip!r}")


# ----------------------------------------------------------------------------------------- model


class FashionClassifier(nn.Module):
    """Small CNN; `features` is the penultimate layer the Fréchet distance is computed on.

    Features are taken before that layer's ReLU: after it, units that are dead on real data would
    be constant zeros, blind to generated images that switch them on, and the rest half-rectified,
    a poor fit for a Gaussian. Input normalisation lives in buffers so the weights file alone
    defines the evaluator.
    """

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.register_buffer("pixel_mean", torch.tensor(0.0))
        self.register_buffer("pixel_std", torch.tensor(1.0))
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.embed = nn.Linear(c2 * (IMAGE_SIZE // 4) ** 2, config.feature_dim)
        self.head = nn.Linear(config.feature_dim, config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Float[N, 1, 28, 28] in [0, 1] -> Float[N, feature_dim] (pre-activation)."""
        return self.embed(self.body((x - self.pixel_mean) / self.pixel_std))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits Float[N, n_classes] from `features`."""
        return self.head(F.relu(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


# ---------------------------------------------------------------------------------------- inputs


def as_images(images: ImagesLike) -> torch.Tensor:
    """Validate images and return Float32[N, 1, 28, 28] in [0, 1].

    Accepts float tensors/arrays in [0, 1] or uint8 (0-255), shaped [N, 28, 28] or [N, 1, 28, 28].
    """
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating):
            images = torch.from_numpy(np.ascontiguousarray(images) if images.flags.writeable else images.copy())
        else:
            raise ConfigError(
                f"images must be float in [0, 1] or uint8, got a numpy array of dtype {images.dtype}"
            )
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"images must be a torch.Tensor or numpy.ndarray, got {type(images).__name__}")
    shape = tuple(images.shape)
    if not (
        (len(shape) == 3 and shape[1:] == (IMAGE_SIZE, IMAGE_SIZE))
        or (len(shape) == 4 and shape[1:] == (1, IMAGE_SIZE, IMAGE_SIZE))
    ):
        raise ConfigError(
            f"images must have shape [N, {IMAGE_SIZE}, {IMAGE_SIZE}] or [N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], "
            f"got {list(shape)}"
        )
    images = images.detach().cpu().reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise ConfigError(f"images must be float in [0, 1] or uint8, got dtype {images.dtype}")
    images = images.float()
    if images.numel():
        if not bool(torch.isfinite(images).all()):
            raise ConfigError("images contain NaN or infinite values; expected floats in [0, 1]")
        lo, hi = float(images.min()), float(images.max())
        if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
            raise ConfigError(
                f"float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]"
                + (" (uint8-scaled floats? divide by 255)" if hi > 1.5 else "")
            )
    return images.clamp(0.0, 1.0)


def as_classes(classes: ClassesLike, n: int) -> torch.Tensor:
    """Validate requested classes: Long[n] with values in [0, N_CLASSES)."""
    try:
        tensor = classes if isinstance(classes, torch.Tensor) else torch.as_tensor(np.asarray(classes))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"classes must be integers in [0, {N_CLASSES}), got {classes!r:.80}: {error}") from error
    if tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.is_complex():
        raise ConfigError(f"classes must be integers in [0, {N_CLASSES}), got dtype {tensor.dtype}")
    if tuple(tensor.shape) != (n,):
        raise ConfigError(f"classes must have shape [{n}] (one per image), got {list(tensor.shape)}")
    tensor = tensor.long().cpu()
    if n and (int(tensor.min()) < 0 or int(tensor.max()) >= N_CLASSES):
        raise ConfigError(
            f"classes must lie in [0, {N_CLASSES}) ({', '.join(CLASS_NAMES)}), "
            f"got values in [{int(tensor.min())}, {int(tensor.max())}]"
        )
    return tensor


# -------------------------------------------------------------------------------- Fréchet distance


def gaussian_stats(features: ImagesLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean Float64[D] and unbiased covariance Float64[D, D] of Float[N, D] features (N >= 2)."""
    x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ConfigError(f"features must have shape [N, D] with N >= 2 and D >= 1, got {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ConfigError(f"features must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ConfigError("features contain NaN or infinite values")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_stats(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """||mu_a - mu_b||^2 + Tr(A) + Tr(B) - 2 Tr((A B)^1/2).

    Tr((A B)^1/2) = Tr((A^1/2 B A^1/2)^1/2), and A^1/2 B A^1/2 is symmetric PSD, so two `eigh` calls
    give it without the complex round-off a general matrix square root of A B produces.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    d = mean_a.shape[0]
    for name, value, shape in (("mean_b", mean_b, (d,)), ("cov_a", cov_a, (d, d)), ("cov_b", cov_b, (d, d))):
        if value.shape != shape:
            raise ConfigError(f"{name} must have shape {list(shape)} to match mean_a, got {list(value.shape)}")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mean_a - mean_b
    distance = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(distance, 0.0)


def frechet_distance(features_a: ImagesLike, features_b: ImagesLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets Float[N_a, D], Float[N_b, D]."""
    mean_a, cov_a = gaussian_stats(features_a)
    mean_b, cov_b = gaussian_stats(features_b)
    if mean_a.shape != mean_b.shape:
        raise ConfigError(f"feature sets must share their dimension, got {mean_a.shape[0]} and {mean_b.shape[0]}")
    return frechet_distance_from_stats(mean_a, cov_a, mean_b, cov_b)


# --------------------------------------------------------------------------------------- reports


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


# ------------------------------------------------------------------------------------ evaluator


@attrs.define
class Evaluator:
    """A trained classifier plus the real-data features it compares generated images with."""

    model: FashionClassifier
    metadata: dict[str, Any] = attrs.field(factory=dict)
    batch_size: int = 1000
    data_dir: str | os.PathLike | None = None
    _reference_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = attrs.field(
        factory=dict, init=False, repr=False
    )

    def __attrs_post_init__(self):
        _check(_is_int(self.batch_size) and self.batch_size >= 1,
               f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        self.model.eval()

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> "Evaluator":
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
        _check(n * repeats <= total and total - n >= 2,
               f"n * repeats disjoint subsets must fit in the {total} test images, got n={n}, repeats={repeats}")
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


# -------------------------------------------------------------------------------- save / load


def save_classifier(
    model: FashionClassifier, path: str | os.PathLike, metrics: dict[str, Any] | None = None
) -> None:
    """Weights as safetensors; config and metrics go in its string metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "config": model.config.to_json(), "metrics": json.dumps(metrics or {})}
    save_file(tensors, str(path), metadata=metadata)


def load_classifier(path: str | os.PathLike) -> tuple[FashionClassifier, dict[str, Any]]:
    """(model in eval mode, metadata with "config" and "metrics") from a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"classifier weights not found at {path}; "
            "reproduce them with `python -m pardecode.fashion.evaluator train`"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises several kinds for corrupt files
        raise CheckpointError(f"cannot read classifier weights {path}: {error}") from error
    if raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a pardecode Fashion-MNIST classifier "
            f"(format {raw.get('format')!r}, expected {FORMAT!r})"
        )
    config = ClassifierConfig.from_json(raw["config"])
    model = FashionClassifier(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not match its own config {config}: {error}") from error
    return model.eval(), {"config": config, "metrics": json.loads(raw.get("metrics", "{}"))}


# ---------------------------------------------------------------------------------------- training


def _augment(x: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random shifts (zero padding) and horizontal flips, one draw per image, in one gather."""
    n, s = x.shape[0], config.max_shift
    if config.flip:
        flips = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flips[:, None, None, None], x.flip(-1), x)
    if s:
        padded = F.pad(x, (s, s, s, s))
        dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=generator)
        rows = (dy[:, None] + torch.arange(IMAGE_SIZE))[:, :, None]
        cols = (dx[:, None] + torch.arange(IMAGE_SIZE))[:, None, :]
        x = padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)
    return x


@torch.inference_mode()
def _predict_all(model: FashionClassifier, images: np.ndarray) -> np.ndarray:
    model.eval()
    return torch.cat([model(chunk).argmax(1) for chunk in as_images(images).split(1000)]).numpy()


def train_classifier(
    out_path: str | os.PathLike,
    epochs: int = 5,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    config: ClassifierConfig = ClassifierConfig(),
    recipe: TrainConfig | None = None,
) -> dict[str, Any]:
    """Train on the TRAIN split, measure on the TEST split, save safetensors; returns the metrics.

    `recipe`, when given, replaces the `epochs` and `seed` shorthands. With one torch thread the
    run is deterministic: the same seed reproduces the shipped weights.
    """
    recipe = recipe or TrainConfig(epochs=epochs, seed=seed)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    train_images, train_labels = data.load("train", data_dir)
    test_images, test_labels = data.load("test", data_dir)
    x_all = torch.from_numpy(train_images.copy()).unsqueeze(1)  # uint8, converted per batch
    y_all = torch.from_numpy(train_labels.astype(np.int64))

    model = FashionClassifier(config)
    pixels = x_all.float() / 255.0
    model.pixel_mean.fill_(float(pixels.mean()))
    model.pixel_std.fill_(float(pixels.std()))
    del pixels
    steps_per_epoch = math.ceil(len(x_all) / recipe.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.15
    )
    start = time.time()
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=generator)
        total_loss, total_correct = 0.0, 0
        for batch in order.split(recipe.batch_size):
            x = _augment(x_all[batch].float() / 255.0, recipe, generator)
            logits = model(x)
            loss = F.cross_entropy(logits, y_all[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
            total_correct += int((logits.argmax(1) == y_all[batch]).sum())
        if progress:
            print(
                f"epoch {epoch + 1}/{recipe.epochs}: loss {total_loss / len(x_all):.4f}, "
                f"augmented train accuracy {total_correct / len(x_all):.4f}, {time.time() - start:.0f}s",
                file=sys.stderr, flush=True,
            )
    test_predicted = _predict_all(model, test_images)
    per_class = np.array([(test_predicted[test_labels == c] == c).mean() for c in range(N_CLASSES)])
    metrics = {
        "test_accuracy": float((test_predicted == test_labels).mean()),
        "test_per_class_accuracy": {name: round(float(a), 4) for name, a in zip(CLASS_NAMES, per_class)},
        "test_balanced_accuracy": float(per_class.mean()),
        "train_accuracy": float((_predict_all(model, train_images) == train_labels).mean()),
        "final_epoch_loss": total_loss / len(x_all),
        "n_train": len(train_images),
        "n_test": len(test_images),
        "recipe": attrs.asdict(recipe),
        "train_seconds": round(time.time() - start, 1),
        "torch": torch.__version__,
    }
    save_classifier(model, out_path, metrics)
    if progress:
        print(f"test accuracy {metrics['test_accuracy']:.4f}; saved {out_path}", file=sys.stderr, flush=True)
    return metrics


# --------------------------------------------------------------------------------------------- CLI


def _reference_table(evaluator: Evaluator, sizes: list[int], repeats: int, seed: int) -> str:
    lines = [
        "| n (real test images) | subsets (disjoint) | reference images | Fréchet distance mean ± std [min, max] "
        "| prompt agreement mean ± std |",
        "|---|---|---|---|---|",
    ]
    for n in sizes:
        spread = evaluator.reference_spread(n, min(repeats, len(evaluator.reference_features()[0]) // n), seed)
        lines.append(
            f"| {n} | {spread.repeats} | {spread.n_reference} | {spread.frechet_mean:.3f} ± {spread.frechet_std:.3f} "
            f"[{min(spread.frechet_distances):.3f}, {max(spread.frechet_distances):.3f}] "
            f"| {spread.agreement_mean:.4f} ± {spread.agreement_std:.4f} |"
        )
    return "\n".join(lines)


def _degradation_table(evaluator: Evaluator, n: int, seed: int) -> str:
    """Scores of n real test images after known degradations, against the other test images:
    anchors between "real" and "broken" for reading generated-set scores at the same n."""
    images, labels = data.load("test", evaluator.data_dir)
    features, _ = evaluator.reference_features("test")
    order = np.random.default_rng(seed).permutation(len(images))
    chosen, rest = order[:n], np.sort(order[n:])
    x, y, reference = as_images(images[chosen]), torch.from_numpy(labels[chosen].astype(np.int64)), features[rest]
    shuffled = y[torch.from_numpy(np.random.default_rng(seed + 1).permutation(n))]
    variants = {
        "real (no change)": (x, y),
        "real, labels shuffled": (x, shuffled),
        "quantised to 8 grey levels": ((x * 7).round() / 7, y),
        "quantised to 4 grey levels": ((x * 3).round() / 3, y),
        "14x14 resolution (2x2 mean, upsampled)": (F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0), y),
        "shifted down 3 px": (F.pad(x, (0, 0, 3, 0))[:, :, :IMAGE_SIZE], y),
        "horizontally flipped": (x.flip(-1), y),
        "uniform noise": (torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)), y),
    }
    lines = [
        f"| {n} images | prompt agreement | Fréchet distance (vs {len(rest)} other test images) |",
        "|---|---|---|",
    ]
    for name, (images_v, classes_v) in variants.items():
        feats = evaluator.features(images_v)
        agreement = evaluator.prompt_agreement(images_v, classes_v)
        lines.append(f"| {name} | {agreement:.3f} | {frechet_distance(feats, reference):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pardecode.fashion.evaluator", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the classifier and save its weights")
    train.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    train.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1, help="torch threads (1 reproduces the shipped weights)")
    train.add_argument("--data-dir", default=None)
    ref = sub.add_parser("reference", help="print the real-data reference figures as markdown")
    ref.add_argument("--weights", default=None)
    ref.add_argument("--sizes", type=int, nargs="+", default=[80, 160, 500, 1000])
    ref.add_argument("--repeats", type=int, default=20, help="subsets per n, capped at 10000 // n")
    ref.add_argument("--seed", type=int, default=0)
    ref.add_argument("--anchor-n", type=int, default=500, help="images per degradation anchor")
    ref.add_argument("--threads", type=int, default=1)
    ref.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "train":
        metrics = train_classifier(args.out, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir)
        print(json.dumps(metrics, indent=2))
        return
    evaluator = Evaluator.load(args.weights, data_dir=args.data_dir)
    features, labels = evaluator.reference_features("test")
    with torch.inference_mode():
        predicted = evaluator.model.classify(features).argmax(1)
    per_class = [float((predicted[labels == c] == c).double().mean()) for c in range(N_CLASSES)]
    print(f"test images: {len(labels)}; accuracy {float((predicted == labels).double().mean()):.4f}; "
          f"per-class accuracy averaged {np.mean(per_class):.4f}")
    print("per class: " + ", ".join(f"{name} {a:.3f}" for name, a in zip(CLASS_NAMES, per_class)))
    print()
    print(_reference_table(evaluator, args.sizes, args.repeats, args.seed))
    print()
    print(_degradation_table(evaluator, args.anchor_n, args.seed))


if __name__ == "__main__":
    main()
