"""`python -m pardecode.fashion.evaluator train | reference`: train the classifier, or print the
real-data reference tables of assets/EVALUATOR.md."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch.nn import functional as F

from . import CLASS_NAMES, data
from . import evaluator as _evaluator
from .classifier import DEFAULT_WEIGHTS, IMAGE_SIZE, N_CLASSES, as_images
from .classifier_training import TrainConfig, train_classifier
from .evaluator import Evaluator
from .frechet import frechet_distance


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
        prog="python -m pardecode.fashion.evaluator", description=_evaluator.__doc__.split("\n")[0]
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
    print(
        f"test images: {len(labels)}; accuracy {float((predicted == labels).double().mean()):.4f}; "
        f"per-class accuracy averaged {np.mean(per_class):.4f}"
    )
    print("per class: " + ", ".join(f"{name} {a:.3f}" for name, a in zip(CLASS_NAMES, per_class)))
    print()
    print(_reference_table(evaluator, args.sizes, args.repeats, args.seed))
    print()
    print(_degradation_table(evaluator, args.anchor_n, args.seed))


if __name__ == "__main__":
    main()
