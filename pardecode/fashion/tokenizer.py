"""A patch codebook tokenizer: 2x2 pixel patches quantised to k-means centroids.

It plays the role of the VQ image tokenizer of a real text-to-image model (Lumina-mGPT's VQGAN) at a
size a CPU can train and sample: a 28x28 image becomes a 14x14 grid of codebook ids, and decoding is a
table look-up, so every sampled token sequence maps to an image without a learned decoder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..core.errors import CheckpointError, ConfigError

PATCH = 2
"""Side of a patch in pixels; a token covers PATCH x PATCH pixels."""


def to_patches(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32[N, H/2, W/2, 4] patches in [0, 1] from uint8 (0..255) or float ([0, 1]) images [N, H, W]."""
    x = images if isinstance(images, torch.Tensor) else torch.tensor(np.asarray(images))
    if x.ndim != 3 or x.shape[1] % PATCH or x.shape[2] % PATCH:
        raise ConfigError(f"images must be [N, H, W] with H and W multiples of {PATCH}, got shape {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    n, h, w = x.shape
    return (
        x.reshape(n, h // PATCH, PATCH, w // PATCH, PATCH)
        .permute(0, 1, 3, 2, 4)
        .reshape(n, h // PATCH, w // PATCH, PATCH * PATCH)
    )


def from_patches(patches: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_patches`: float[N, h, w, 4] -> float[N, 2h, 2w]."""
    n, h, w, _ = patches.shape
    return patches.reshape(n, h, w, PATCH, PATCH).permute(0, 1, 3, 2, 4).reshape(n, h * PATCH, w * PATCH)


def _nearest(points: torch.Tensor, centroids: torch.Tensor, chunk: int = 1 << 18) -> torch.Tensor:
    """Index of the nearest centroid of each point (squared Euclidean), in chunks to bound memory."""
    c_sq = (centroids * centroids).sum(1)
    out = torch.empty(len(points), dtype=torch.long)
    for start in range(0, len(points), chunk):
        p = points[start : start + chunk]
        # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 does not change the argmin.
        out[start : start + chunk] = (c_sq - 2.0 * p @ centroids.T).argmin(1)
    return out


def _kmeans_pp(points: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: spreads the initial centroids so rare patches (edges) get entries too."""
    centroids = torch.empty(k, points.shape[1])
    centroids[0] = points[torch.randint(len(points), (1,), generator=gen)]
    d2 = ((points - centroids[0]) ** 2).sum(1)
    for i in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: repeat (later reseeded or left duplicate)
            idx = torch.randint(len(points), (1,), generator=gen)
        else:
            idx = torch.multinomial(d2 / total, 1, generator=gen)
        centroids[i] = points[idx]
        d2 = torch.minimum(d2, ((points - centroids[i]) ** 2).sum(1))
    return centroids


def kmeans(points: torch.Tensor, k: int, iters: int = 25, seed: int = 0, init_sample: int = 50_000) -> torch.Tensor:
    """Full-batch Lloyd k-means with k-means++ seeding; empty clusters move to the worst-fit points."""
    gen = torch.Generator().manual_seed(seed)
    init_idx = torch.randperm(len(points), generator=gen)[: min(init_sample, len(points))]
    centroids = _kmeans_pp(points[init_idx], k, gen)
    for _ in range(iters):
        assign = _nearest(points, centroids)
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        new = sums / counts.clamp(min=1).unsqueeze(1)
        empty = counts == 0
        if empty.any():
            err = ((points - new[assign]) ** 2).sum(1)
            new[empty] = points[err.topk(int(empty.sum())).indices]
        shift = (new - centroids).abs().max()
        centroids = new
        if shift < 1e-6:
            break
    return centroids


class PatchTokenizer:
    """Maps [N, 28, 28] images to [N, 14, 14] codebook ids and back."""

    def __init__(self, codebook: torch.Tensor):
        codebook = torch.as_tensor(codebook, dtype=torch.float32)
        if codebook.ndim != 2 or codebook.shape[1] != PATCH * PATCH or len(codebook) < 2:
            raise ConfigError(
                f"codebook must be float[K, {PATCH * PATCH}] with K >= 2, got shape {tuple(codebook.shape)}"
            )
        self.codebook = codebook

    @property
    def size(self) -> int:
        return len(self.codebook)

    @classmethod
    def fit(
        cls,
        images: np.ndarray | torch.Tensor,
        size: int = 256,
        iters: int = 25,
        seed: int = 0,
        max_patches: int = 1_000_000,
    ) -> PatchTokenizer:
        """Fit a `size`-entry codebook on (a seeded sample of at most `max_patches` of) the images' patches."""
        if not isinstance(size, int) or size < 2:
            raise ConfigError(f"codebook size must be an int >= 2, got {size!r}")
        points = to_patches(images).reshape(-1, PATCH * PATCH)
        if len(points) > max_patches:
            gen = torch.Generator().manual_seed(seed + 1)
            points = points[torch.randperm(len(points), generator=gen)[:max_patches]]
        return cls(kmeans(points, size, iters=iters, seed=seed))

    def encode(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Long[N, h, w] ids of the nearest codebook entry of each 2x2 patch."""
        patches = to_patches(images)
        n, h, w, d = patches.shape
        return _nearest(patches.reshape(-1, d), self.codebook).reshape(n, h, w)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """float[N, 2h, 2w] images in [0, 1] from Long[N, h, w] ids."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.ndim != 3:
            raise ConfigError(f"ids must be [N, h, w], got shape {tuple(ids.shape)}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.size):
            raise ConfigError(f"ids must lie in [0, {self.size}), got range [{int(ids.min())}, {int(ids.max())}]")
        return from_patches(self.codebook.clamp(0.0, 1.0)[ids])

    def reconstruction_error(self, images: np.ndarray | torch.Tensor) -> dict[str, float]:
        """Mean squared error (pixels in [0, 1]) and PSNR in dB of encode -> decode."""
        target = from_patches(to_patches(images))
        mse = float(((self.decode(self.encode(images)) - target) ** 2).mean())
        return {"mse": mse, "psnr_db": float(10 * np.log10(1.0 / max(mse, 1e-12)))}

    def save(self, path: str | os.PathLike) -> None:
        save_file({"codebook": self.codebook.contiguous()}, str(path), metadata={"patch": str(PATCH)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> PatchTokenizer:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"codebook file {path} does not exist")
        try:
            tensors = load_file(str(path))
        except Exception as err:  # truncated or not a safetensors file
            raise CheckpointError(f"cannot read codebook file {path}: {' '.join(str(err).split())}") from None
        if "codebook" not in tensors:
            raise CheckpointError(f"{path} holds no 'codebook' tensor (found {sorted(tensors)})")
        return cls(tensors["codebook"])
