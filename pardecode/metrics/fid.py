"""FID through torchmetrics' FrechetInceptionDistance, against a reference folder or precomputed statistics.

The feature model is injectable: by default torch-fidelity's InceptionV3 (pool3, 2048-d), as
torchmetrics ships it, with weights from `weights=` (a local file) or torch-fidelity's cache; any
torch module mapping uint8[N, 3, H, W] to float[N, D] works (tests use a tiny random one). Every
image, generated or reference, is converted to RGB and resized to `size` x `size` (PIL bicubic)
before the feature model sees it. Statistics files are `.npz` with `mu` and `sigma` (the layout
pytorch-fid and clean-fid write); `save_stats` writes one from a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.metric import Metric
from .images import as_rgb_batch, read_folder

INCEPTION_DIMS = (64, 192, 768, 2048)


def _torchmetrics_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("torchmetrics")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _require_torchmetrics():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        raise ConfigError("the fid metric needs torchmetrics: pip install 'pardecode[metrics]'") from None
    return FrechetInceptionDistance


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu[D], sigma[D, D]) from an .npz holding `mu` and `sigma`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"FID statistics file {str(path)!r} does not exist")
    with np.load(path) as data:
        if "mu" not in data or "sigma" not in data:
            raise ConfigError(
                f"FID statistics file {str(path)!r} must hold arrays 'mu' and 'sigma', got {sorted(data)}"
            )
        mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ConfigError(
            f"FID statistics file {str(path)!r}: mu must be [D] and sigma [D, D], got {mu.shape} and {sigma.shape}"
        )
    return mu, sigma


class FID(Metric):
    """Fréchet distance between the feature Gaussians of generated images and of a reference set."""

    name = "fid"

    def __init__(
        self,
        *,
        reference: str | Path | None = None,
        stats: str | Path | None = None,
        size: int = 299,
        dims: int = 2048,
        weights: str | Path | None = None,
        feature: Any = None,
        feature_name: str | None = None,
        batch: int = 64,
    ):
        if (reference is None) == (stats is None):
            raise ConfigError(
                "the fid metric needs exactly one of reference= (a folder of images) or stats= (an .npz of mu, sigma)"
            )
        if not isinstance(size, int) or size < 16:
            raise ConfigError(f"fid size must be an integer >= 16 (pixels), got {size!r}")
        if feature is None and dims not in INCEPTION_DIMS:
            raise ConfigError(
                f"fid dims must be one of {list(INCEPTION_DIMS)} (InceptionV3 feature layers), got {dims!r}"
            )
        if reference is not None and not Path(reference).is_dir():
            raise ConfigError(f"reference folder {str(reference)!r} does not exist")
        if stats is not None and not Path(stats).is_file():
            raise ConfigError(f"FID statistics file {str(stats)!r} does not exist")
        if weights is not None and not Path(weights).is_file():
            raise ConfigError(f"fid weights file {str(weights)!r} does not exist")
        self.reference, self.stats, self.size, self.dims = reference, stats, size, dims
        self.weights, self.feature, self.batch = weights, feature, batch
        self.feature_name = feature_name or (type(feature).__name__ if feature is not None else None)

    @property
    def variant(self) -> str:
        features = (
            f"custom feature model {self.feature_name}"
            if self.feature is not None
            else f"torch-fidelity InceptionV3 {self.dims}-d" + (f" (weights {self.weights})" if self.weights else "")
        )
        against = (
            f"reference folder {self.reference}" if self.reference is not None else f"reference stats {self.stats}"
        )
        return (
            f"torchmetrics {_torchmetrics_version()} FrechetInceptionDistance, {features}, "
            f"RGB {self.size}x{self.size} (PIL bicubic), {against}"
        )

    def _metric(self):
        FrechetInceptionDistance = _require_torchmetrics()
        if self.feature is not None:
            return FrechetInceptionDistance(feature=self.feature, input_img_size=(3, self.size, self.size))
        return FrechetInceptionDistance(
            feature=self.dims, feature_extractor_weights_path=None if self.weights is None else str(self.weights)
        )

    def _update(self, metric, images: np.ndarray, real: bool) -> None:
        import torch

        for start in range(0, len(images), self.batch):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch])).permute(0, 3, 1, 2)
            metric.update(chunk, real=real)

    def _load_reference(self, metric) -> None:
        import torch

        if self.stats is not None:
            mu, sigma = load_stats(self.stats)
            n = 2  # any n >= 2: torchmetrics recovers mu and sigma exactly from these sums
            mean = torch.from_numpy(mu)
            metric.real_features_sum = (mean * n).to(metric.real_features_sum)
            metric.real_features_cov_sum = (torch.from_numpy(sigma) * (n - 1) + n * torch.outer(mean, mean)).to(
                metric.real_features_cov_sum
            )
            metric.real_features_num_samples = torch.tensor(n, dtype=metric.real_features_num_samples.dtype)
        else:
            self._update(metric, as_rgb_batch(read_folder(self.reference), self.size), real=True)

    def features(self, images: Sequence[Any]) -> np.ndarray:
        """Float64[N, D] features of `images` as the metric computes them (for `save_stats`, tests)."""
        import torch

        metric = self._metric()
        batch = torch.from_numpy(as_rgb_batch(images, self.size)).permute(0, 3, 1, 2)
        with torch.no_grad():
            return metric.inception(batch).double().numpy()

    def score(self, images, prompts, classes=None) -> dict[str, float]:
        import torch

        generated = as_rgb_batch(images, self.size)
        if len(generated) < 2:
            raise ConfigError(f"fid needs >= 2 generated images, got {len(generated)}")
        metric = self._metric()
        with torch.no_grad():
            self._load_reference(metric)
            self._update(metric, generated, real=False)
            value = float(metric.compute())
        return {"fid": value}


def save_stats(metric: FID, images: Sequence[Any], path: str | Path) -> Path:
    """Write `images`' feature statistics (`mu`, `sigma`) as the metric computes them, for `stats=` later."""
    features = metric.features(images)
    path = Path(path)
    np.savez(path, mu=features.mean(0), sigma=np.cov(features, rowvar=False))
    return path
