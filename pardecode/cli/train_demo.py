"""`pardecode train-demo`: reproduce the default model from scratch."""

from __future__ import annotations

import argparse
import json


def cmd_train_demo(args: argparse.Namespace) -> int:
    import attrs

    from ..fashion.recipe import RecipeConfig, train_default_model

    overrides = {
        k: v
        for k, v in {
            "steps": args.steps,
            "time_budget_s": args.time_budget,
            "threads": args.threads,
            "limit": args.limit,
            "seed": args.seed,
            "eval_limit": args.eval_limit,
        }.items()
        if v is not None
    }
    config = attrs.evolve(RecipeConfig(), **overrides)
    model_dir = train_default_model(
        args.out, config, data_dir=args.data_dir, progress=not args.quiet, resume=not args.fresh
    )
    metrics = json.loads((model_dir.parent / "metrics.json").read_text())
    print(
        json.dumps(
            {"model": str(model_dir), **{k: metrics[k] for k in sorted(metrics) if not isinstance(metrics[k], dict)}}
        )
    )
    print(
        f"decode with it: pardecode generate --backbone fashion -B path={model_dir} --prompt 'a sneaker' --out grid.png"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-demo", help="train the default Fashion-MNIST model from scratch (resumable)")
    p.add_argument("--out", default="runs/fashion", help="run directory (checkpoint/, model/, metrics.json)")
    p.add_argument("--steps", type=int, help="training steps (default: the shipped recipe's)")
    p.add_argument("--time-budget", type=float, help="stop after this many seconds of training")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--limit", type=int, help="train on the first N training images only (smoke runs)")
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-limit", type=int, help="test images for the held-out NLL (default: the recipe's)")
    p.add_argument("--data-dir", help="directory with the Fashion-MNIST IDX files (default: Debian's)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_demo)
