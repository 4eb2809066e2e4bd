"""`pardecode finetune-sjd2`: next-clean-token fine-tuning of any transformers backbone."""

from __future__ import annotations

import argparse
import json

from .arguments import key_values


def cmd_finetune_sjd2(args: argparse.Namespace) -> int:
    import attrs

    from ..api import get_backbone
    from ..core.errors import ConfigError
    from ..finetune.data import fashion_spans, self_spans, training_set
    from ..finetune.noising import SegmentNoise
    from ..finetune.sjd2 import FinetuneConfig, finetune_sjd2

    backbone = get_backbone(args.backbone, **key_values(args.backbone_option, "--backbone-option"))
    if not hasattr(backbone, "body"):
        raise ConfigError(f"backbone {args.backbone!r} is not a transformers model; finetune-sjd2 needs inputs_embeds")
    if args.data == "fashion":
        train = training_set(backbone, *fashion_spans(backbone, "train", args.limit, seed=args.seed))
        held = training_set(backbone, *fashion_spans(backbone, "test", args.held_out, seed=args.seed), uncond_rate=0.0)
    elif args.data == "self":
        prompts = args.prompt or []
        train = training_set(backbone, *self_spans(backbone, prompts, args.limit or 256, seed=args.seed))
        held = training_set(
            backbone, *self_spans(backbone, prompts, args.held_out, seed=args.seed + 10**6), uncond_rate=0.0
        )
    else:
        raise ConfigError(f"--data must be 'fashion' or 'self', got {args.data!r}")
    noise = SegmentNoise(
        **{
            k: v
            for k, v in {
                "clean_ratio": args.clean_ratio,
                "segment_min": args.segment_min,
                "segment_max": args.segment_max,
            }.items()
            if v is not None
        }
    )
    overrides = {
        k: v
        for k, v in {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "time_budget_s": args.time_budget,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    config = attrs.evolve(FinetuneConfig(noise=noise), **overrides)
    metrics = finetune_sjd2(
        backbone, train, args.out, config, held_out=held, progress=not args.quiet, resume=not args.fresh
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "config"}))
    print(f"decode with it: pardecode generate --backbone {args.backbone} -B path={args.out}/model --strategy sjd2 ...")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune-sjd2", help="teach a backbone to read noisy inputs (SJD2 next-clean-token training)")
    p.add_argument("--backbone", default="fashion")
    p.add_argument("-B", "--backbone-option", action="append", metavar="KEY=VALUE")
    p.add_argument(
        "--data",
        default="fashion",
        help="'fashion' (Fashion-MNIST through the model's codebook) or 'self' (the model's own AR samples)",
    )
    p.add_argument("--prompt", action="append", help="prompts for --data self (repeatable)")
    p.add_argument("--limit", type=int, help="training sequences (default: all of fashion; 256 for self)")
    p.add_argument("--held-out", type=int, default=1000, help="held-out sequences for the clean NLL check")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--clean-ratio", type=float)
    p.add_argument("--segment-min", type=int)
    p.add_argument("--segment-max", type=int)
    p.add_argument("--time-budget", type=float, help="stop after this many seconds of training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory: model/, metrics.json, resumable state")
    p.add_argument("--fresh", action="store_true", help="ignore a resumable state in --out")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_finetune_sjd2)
