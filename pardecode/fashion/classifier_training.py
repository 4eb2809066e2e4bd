"""Training the evaluator's classifier on the TRAIN split (`python -m pardecode.fashion.evaluator train`)."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import attrs
import numpy as np
import torch
from torch.nn import functional as F

from . import CLASS_NAMES, data
from .classifier import (
    IMAGE_SIZE,
    N_CLASSES,
    ClassifierConfig,
    FashionClassifier,
    _check,
    _is_int,
    as_images,
    save_classifier,
)


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
        _check(
            _is_int(self.batch_size) and self.batch_size >= 1,
            f"batch_size must be an integer >= 1, got {self.batch_size!r}",
        )
        _check(
            isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
            f"lr must be a finite number > 0, got {self.lr!r}",
        )
        _check(
            isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}",
        )
        _check(_is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        _check(
            _is_int(self.max_shift) and 0 <= self.max_shift < IMAGE_SIZE // 2,
            f"max_shift must be an integer in [0, {IMAGE_SIZE // 2 - 1}] (0 = off), got {self.max_shift!r}",
        )
        _check(isinstance(self.flip, bool), f"flip must be a bool, got {self.flip!r}")


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
                file=sys.stderr,
                flush=True,
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
