"""`pardecode generate`: decode images for a prompt, write a PNG grid and say what it cost."""

from __future__ import annotations

import argparse
import json

from .arguments import add_decode_options, build, key_values


def chosen_strategy(args: argparse.Namespace, backbone, strategy, sampling, start: dict):
    """(strategy, a line saying why) : the named one, or the fastest exact setting for the batch."""
    from ..api import choose_strategy

    if strategy is not None:
        return strategy, None
    choice = choose_strategy(backbone, args.batch, sampling=sampling, **start)
    return choice.strategy, f"strategy: {choice.describe()}"


def cmd_generate(args: argparse.Namespace) -> int:
    from ..api import decode
    from ..imaging import save_grid

    backbone, strategy, sampling = build(args)
    start = key_values(args.start_option, "--start-option")
    strategy, why = chosen_strategy(args, backbone, strategy, sampling, start)
    if why and not args.json:
        print(why)
    result = decode(backbone, strategy, [args.prompt] * args.batch, sampling=sampling, seed=args.seed, **start)
    length = result.tokens.shape[1]
    report = {
        "backbone": args.backbone,
        "strategy": strategy.name,
        **({"chosen": why.removeprefix("strategy: ")} if why else {}),
        "batch": args.batch,
        "forward_passes": result.forward_passes,
        "image_tokens": length,
        "seconds": round(result.seconds, 4),
        "step_compression": round(length / result.forward_passes, 4),
        "tokens_per_pass": round(result.trace.tokens_per_pass, 4),
    }
    images = backbone.images(result.tokens, result.session)
    if args.out:
        if images is None:
            report["out"] = None
            reason = getattr(backbone, "no_images_reason", None) or f"backbone {args.backbone!r} has no image decoder"
            report["note"] = f"{reason}; no PNG written"
        else:
            report["out"] = str(save_grid(images, args.out, scale=args.scale))
    ar_seconds = ar_estimate(backbone, sampling, args.batch, length, start) if strategy.name != "ar" else None
    if ar_seconds is not None:
        report["ar_seconds_estimate"] = round(ar_seconds, 4)
    if result.trace.setup_seconds:
        report["setup_seconds"] = round(result.trace.setup_seconds, 4)
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['strategy']} on {report['backbone']}: {report['forward_passes']} forward passes for "
            f"{length} tokens per image (AR needs {length}: step compression {report['step_compression']:.2f}x), "
            f"{report['seconds']:.2f} s for {args.batch} image(s)"
            + (f"; AR would take about {ar_seconds:.2f} s ({ar_seconds / report['seconds']:.2f}x), by this "
               "machine's cost profile" if ar_seconds else "")
        )
        if result.trace.setup_seconds > 0.5:
            print(f"(found this machine's cost profile first: {result.trace.setup_seconds:.1f} s)")
        if args.out:
            print(report.get("note") or f"wrote {report['out']}")
    return 0


def ar_estimate(backbone, sampling, batch: int, length: int, start: dict) -> float | None:
    """Seconds AR would take for this batch, from the stored cost profile (None if there is none)."""
    from ..core.cost import CostProfile
    from ..planning import profile_key

    profile = CostProfile.load(profile_key(backbone, sampling, start))
    if profile is None or batch not in profile.batches:
        return None
    return length * profile.pass_seconds(batch, 0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="decode images for a prompt and write a PNG grid",
                       description="Decode images for a prompt and write a PNG grid.",
                       epilog="`pardecode list` shows every strategy and backbone with its options, types and defaults.")
    p.add_argument("--prompt", required=True, help="what to draw (the default model knows the ten Fashion-MNIST classes, e.g. 'a sneaker')")
    add_decode_options(p, default_backbone="fashion", default_strategy=None)
    p.add_argument("--start-option", action="append", metavar="KEY=VALUE", help="backbone start option, e.g. size=[28,28]")
    p.add_argument("--out", help="PNG grid to write")
    p.add_argument("--scale", type=int, default=4, help="upscale factor of the PNG grid (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_generate)
