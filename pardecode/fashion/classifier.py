"""The Fashion-MNIST classifier behind the evaluator: its shape, the CNN, the images it accepts,
and its weights file (safetensors, config and metrics in the metadata)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from ..core.errors import CheckpointError, ConfigError
from . import CLASS_NAMES

IMAGE_SIZE = 28
N_CLASSES = len(CLASS_NAMES)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "assets" / "classifier.safetensors"
FORMAT = "pardecode.fashion.classifier/1"

ImagesLike = torch.Tensor | np.ndarray
ClassesLike = torch.Tensor | np.ndarray | list[int]
_RANGE_TOLERANCE = 1e-4  # float images may stray this far outside [0, 1] through rounding


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@attrs.frozen
class ClassifierConfig:
    """Shape of the classifier: two conv blocks (conv3x3-BN-ReLU-maxpool) and a feature layer."""

    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 64
    n_classes: int = N_CLASSES

    def __attrs_post_init__(self):
        _check(
            isinstance(self.channels, tuple)
            and len(self.channels) == 2
            and all(_is_int(c) and c >= 1 for c in self.channels),
            f"channels must be a tuple of 2 positive integers, got {self.channels!r}",
        )
        _check(
            _is_int(self.feature_dim) and self.feature_dim >= 2,
            f"feature_dim must be an integer >= 2, got {self.feature_dim!r}",
        )
        _check(
            _is_int(self.n_classes) and self.n_classes >= 2,
            f"n_classes must be an integer >= 2, got {self.n_classes!r}",
        )

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClassifierConfig:
        raw = json.loads(text)
        return cls(channels=tuple(raw["channels"]), feature_dim=raw["feature_dim"], n_classes=raw["n_classes"])


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
            nn.Conv2d(1, c1, 3, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
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


def as_images(images: ImagesLike) -> torch.Tensor:
    """Validate images and return Float32[N, 1, 28, 28] in [0, 1].

    Accepts float tensors/arrays in [0, 1] or uint8 (0-255), shaped [N, 28, 28] or [N, 1, 28, 28].
    """
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating):
            images = torch.from_numpy(np.ascontiguousarray(images) if images.flags.writeable else images.copy())
        else:
            raise ConfigError(f"images must be float in [0, 1] or uint8, got a numpy array of dtype {images.dtype}")
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


def save_classifier(model: FashionClassifier, path: str | os.PathLike, metrics: dict[str, Any] | None = None) -> None:
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
            f"classifier weights not found at {path}; reproduce them with `python -m pardecode.fashion.evaluator train`"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises several kinds for corrupt files
        raise CheckpointError(f"cannot read classifier weights {path}: {error}") from error
    if raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a pardecode Fashion-MNIST classifier (format {raw.get('format')!r}, expected {FORMAT!r})"
        )
    config = ClassifierConfig.from_json(raw["config"])
    model = FashionClassifier(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not match its own config {config}: {error}") from error
    return model.eval(), {"config": config, "metrics": json.loads(raw.get("metrics", "{}"))}
