"""Turning decoded images into PNG grids."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def as_array(images: Any) -> np.ndarray:
    """uint8[N, H, W, C] from a tensor/array in [0, 1] ([N,H,W], [N,H,W,C] or [N,C,H,W]) or PIL images."""
    if isinstance(images, (list, tuple)) and images and hasattr(images[0], "convert"):
        return np.stack([np.asarray(im.convert("RGB")) for im in images])
    arr = images.detach().float().cpu().numpy() if hasattr(images, "detach") else np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.ndim != 4:
        raise ValueError(f"cannot make images from an array of shape {arr.shape}")
    return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)


def _write(arr: np.ndarray, rows: int, cols: int, path: str | Path, scale: int, pad: int) -> Path:
    from PIL import Image

    if scale > 1:
        arr = arr.repeat(scale, 1).repeat(scale, 2)
    n, h, w, c = arr.shape
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):  # once per image, not per token
        r, k = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = arr[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas.squeeze(-1) if c == 1 else canvas).save(path)
    return path


def save_grid(images: Any, path: str | Path, *, scale: int = 1, pad: int = 2) -> Path:
    """Write images as one about-square PNG grid, optionally upscaled by `scale` (nearest)."""
    arr = as_array(images)
    cols = math.ceil(math.sqrt(len(arr)))
    return _write(arr, math.ceil(len(arr) / cols), cols, path, scale, pad)


def save_grid_rows(images: Any, path: str | Path, *, scale: int = 1, pad: int = 2) -> Path:
    """Write Float[R, C, H, W] images as a PNG of R rows of C images (e.g. one row per class)."""
    rows, cols = images.shape[:2]
    return _write(as_array(images.reshape(rows * cols, *images.shape[2:])), rows, cols, path, scale, pad)
