"""Generated or reference images as one uint8 RGB batch at a fixed size, and reference folders read from disk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _pil(image: Any):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ConfigError(f"images must be PIL images or uint8 arrays, got an array of {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert("RGB")


def as_rgb_batch(images: Sequence[Any] | np.ndarray, size: int | None) -> np.ndarray:
    """uint8[N, size, size, 3] (bicubic resize; `size` None keeps each image's size, which must then agree)."""
    from PIL import Image

    if isinstance(images, np.ndarray) and images.ndim in (3, 4):
        images = list(images) if images.ndim == 4 or images.shape[-1] not in (1, 3) else [images]
    pils = [_pil(im) for im in images]
    if size is not None:
        pils = [im if im.size == (size, size) else im.resize((size, size), Image.BICUBIC) for im in pils]
    shapes = {im.size for im in pils}
    if len(shapes) > 1:
        raise ConfigError(f"images differ in size {sorted(shapes)}; give the metric a size= to resize them")
    return np.stack([np.asarray(im) for im in pils]) if pils else np.zeros((0, 1, 1, 3), np.uint8)


def read_folder(folder: str | Path) -> list[Any]:
    """Every image file directly in `folder`, sorted by name, as PIL RGB images."""
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"reference folder {str(root)!r} does not exist")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise ConfigError(
            f"reference folder {str(root)!r} holds {len(files)} image(s) ({'/'.join(IMAGE_SUFFIXES)}); need >= 2"
        )
    return [Image.open(p).convert("RGB") for p in files]
