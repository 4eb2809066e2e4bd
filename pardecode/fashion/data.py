"""Fashion-MNIST in the IDX format its authors publish (Debian: dataset-fashion-mnist)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The directory holding the IDX files: `path`, else $PARDECODE_FASHION_DIR, else Debian's."""
    return Path(path or os.environ.get("PARDECODE_FASHION_DIR") or DEFAULT_DIR)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(split: str, path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8[N, 28, 28], labels uint8[N]) of the official `split` ("train" or "test")."""
    if split not in _FILES:
        raise ConfigError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    root = data_dir(path)
    files = []
    for name in _FILES[split]:
        candidates = [root / name, root / name.removesuffix(".gz")]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise ConfigError(
                f"Fashion-MNIST file {name} not found in {root}. Install it with "
                "`apt-get install dataset-fashion-mnist`, or pass a directory holding the IDX files "
                "(or set PARDECODE_FASHION_DIR)."
            )
        files.append(found)
    images, labels = (_read_idx(f) for f in files)
    if len(images) != len(labels):
        raise ConfigError(f"{files[0]} has {len(images)} images but {files[1]} has {len(labels)} labels")
    return images, labels
