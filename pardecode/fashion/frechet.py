"""Fréchet distance between Gaussians fitted to two feature sets (the FID formula), and the Gaussian
statistics it is computed from."""

from __future__ import annotations

import numpy as np
import torch

from ..core.errors import ConfigError
from .classifier import ImagesLike


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


def frechet_distance_from_stats(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
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
