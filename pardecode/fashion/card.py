"""Figures for the default model's card: AR sample quality, token entropy, a sample grid.

    python -m pardecode.fashion.card --backbone fashion --per-class 16 --grid assets/samples.png

prints JSON: prompt agreement and Frechet distance of AR samples (with the real-data spread at the
same sample count) and the mean entropy of the target distribution p at image-cell positions under
the backbone's default sampling settings (CFG, top-k), measured while decoding.
"""

from __future__ import annotations

import argparse
import json
import time

import attrs
import torch

from ..api import decode, get_backbone, get_strategy
from ..strategies.ar import AR
from . import CLASS_NAMES
from .vocab import PROMPTS_BY_CLASS


@attrs.define
class EntropyProbe(AR):
    """AR that also records the entropy (nats) of p at every image-cell position it samples."""

    entropies: list = attrs.field(factory=list)

    def verify(self, ctx, proposal, p):
        target = p[:, 0]
        entropy = -(target * target.clamp_min(1e-30).log()).sum(-1)
        allowed = ctx.allowed(1)
        cell = allowed[:, 0].sum(-1) > 1 if allowed is not None else torch.ones_like(entropy, dtype=torch.bool)
        self.entropies.append(entropy[cell & (ctx.committed < ctx.length)])
        return super().verify(ctx, proposal, p)


def class_prompts(per_class: int) -> tuple[list[str], list[int]]:
    """The first phrasing of every class, `per_class` times each (class-major order)."""
    prompts = [PROMPTS_BY_CLASS[name][0] for name in CLASS_NAMES for _ in range(per_class)]
    classes = [c for c in range(len(CLASS_NAMES)) for _ in range(per_class)]
    return prompts, classes


def measure(backbone, per_class: int = 16, seed: int = 0, batch: int = 40, strategy: str = "ar", **strategy_options):
    """Decode `per_class` images of every class; return (figures, images as Float[N, 28, 28])."""
    from .evaluator import default_evaluator

    prompts, classes = class_prompts(per_class)
    probe = EntropyProbe() if strategy == "ar" else get_strategy(strategy, **strategy_options)
    images, passes, started = [], 0, time.perf_counter()
    for i in range(0, len(prompts), batch):
        result = decode(backbone, probe, prompts[i : i + batch], seed=seed + i)
        passes += result.forward_passes
        pil = backbone.images(result.tokens, result.session)
        images.append(
            torch.stack(
                [torch.tensor(list(im.getdata()), dtype=torch.float32).reshape(im.height, im.width) for im in pil]
            )
            / 255
        )
    images = torch.cat(images)
    evaluator = default_evaluator()
    report = evaluator.evaluate(images, classes)
    spread = evaluator.reference_spread(len(images), repeats=5, seed=seed)
    figures = {
        "strategy": strategy,
        "images": len(images),
        "per_class": per_class,
        "sampling": attrs.asdict(backbone.default_sampling),
        "prompt_agreement": round(report.prompt_agreement, 4),
        "frechet_distance": round(report.frechet_distance, 2),
        "real_frechet_at_same_n": f"{spread.frechet_mean:.1f} +- {spread.frechet_std:.1f}",
        "real_agreement_at_same_n": f"{spread.agreement_mean:.3f} +- {spread.agreement_std:.3f}",
        "forward_passes": passes,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if strategy == "ar":
        ent = torch.cat(probe.entropies)
        figures |= {"mean_image_token_entropy_nats": round(float(ent.mean()), 4), "entropy_positions": len(ent)}
    return figures, images


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="fashion")
    p.add_argument("--path", help="checkpoint directory (default: the shipped one)")
    p.add_argument("--per-class", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", help="write the samples as a PNG grid (one row per class)")
    args = p.parse_args(argv)
    backbone = get_backbone(args.backbone, **({"path": args.path} if args.path else {}))
    figures, images = measure(backbone, args.per_class, args.seed)
    if args.grid:
        from ..imaging import save_grid_rows

        save_grid_rows(images.reshape(len(CLASS_NAMES), args.per_class, *images.shape[1:]), args.grid, scale=2)
        figures["grid"] = args.grid
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
