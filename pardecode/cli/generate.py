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

    if args.prompts_file:
        return generate_many(args)
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
            + (
                f"; AR would take about {ar_seconds:.2f} s ({ar_seconds / report['seconds']:.2f}x), by this "
                "machine's cost profile"
                if ar_seconds
                else ""
            )
        )
        if result.trace.setup_seconds > 0.5:
            print(f"(found this machine's cost profile first: {result.trace.setup_seconds:.1f} s)")
        if args.out:
            print(report.get("note") or f"wrote {report['out']}")
    return 0


def generate_many(args: argparse.Namespace) -> int:
    """One image per prompt of a file, `--batch` prompts per decode (seed + batch index), each image a
    PNG in the --out directory (native size, `00000.png` ...) beside `prompts.jsonl` (index, file, prompt,
    the prompt's metadata): what FID and CLIP tools read."""
    from pathlib import Path

    from PIL import Image

    from ..api import decode
    from ..benchmarks.prompt_sets import read_prompts_file
    from ..imaging import as_array

    prompts = read_prompts_file(args.prompts_file)
    backbone, strategy, sampling = build(args)
    start = key_values(args.start_option, "--start-option")
    strategy, why = chosen_strategy(args, backbone, strategy, sampling, start)
    if why and not args.json:
        print(why)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    passes = tokens = 0
    seconds = 0.0
    index_lines, note = [], None
    for number, first in enumerate(range(0, len(prompts), args.batch)):
        rows = list(prompts.prompts[first : first + args.batch])
        result = decode(backbone, strategy, rows, sampling=sampling, seed=args.seed + number, **start)
        passes, seconds = passes + result.forward_passes, seconds + result.seconds
        tokens += result.tokens.shape[1] * len(rows)
        images = backbone.images(result.tokens, result.session) if out is not None else None
        if out is not None and images is None:
            note = getattr(backbone, "no_images_reason", None) or f"backbone {args.backbone!r} has no image decoder"
        pixels = as_array(images) if images is not None else None  # uint8[B, H, W, C]
        for j, prompt in enumerate(rows):
            entry = {"index": first + j, "prompt": prompt, **prompts.metadata[first + j]}
            if pixels is not None:
                entry["file"] = f"{first + j:05d}.png"
                image = pixels[j, ..., 0] if pixels.shape[-1] == 1 else pixels[j]
                Image.fromarray(image).save(out / entry["file"])
            index_lines.append(json.dumps(entry))
    if out is not None:
        (out / "prompts.jsonl").write_text("".join(line + "\n" for line in index_lines))
    report = {
        "backbone": args.backbone,
        "strategy": strategy.name,
        "prompts": len(prompts),
        "batch": args.batch,
        "forward_passes": passes,
        "image_tokens": tokens,
        "seconds": round(seconds, 4),
        "step_compression": round(tokens / passes, 4) if passes else None,
        "out": str(out) if out is not None and note is None else None,
    }
    if note:
        report["note"] = f"{note}; no PNG written"
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{strategy.name} on {args.backbone}: {len(prompts)} prompt(s), {passes} forward passes for {tokens} "
            f"image tokens (step compression {report['step_compression']:.2f}x), {seconds:.2f} s"
        )
        if out is not None:
            print(report.get("note") or f"wrote {len(prompts)} image(s) and prompts.jsonl to {out}")
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
    p = sub.add_parser(
        "generate",
        help="decode images for a prompt and write a PNG grid",
        description="Decode images for a prompt and write a PNG grid.",
        epilog="`pardecode list` shows every strategy and backbone with its options, types and defaults.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--prompt", help="what to draw (the default model knows the ten Fashion-MNIST classes, e.g. 'a sneaker')"
    )
    what.add_argument(
        "--prompts-file",
        metavar="FILE",
        help="one image per prompt (.txt: one per line; .jsonl: a prompt field), --batch prompts per "
        "decode; --out is then a directory of PNGs and prompts.jsonl",
    )
    add_decode_options(p, default_backbone="fashion", default_strategy=None)
    p.add_argument(
        "--start-option", action="append", metavar="KEY=VALUE", help="backbone start option, e.g. size=[28,28]"
    )
    p.add_argument("--out", help="PNG grid to write (with --prompts-file: a directory)")
    p.add_argument("--scale", type=int, default=4, help="upscale factor of the PNG grid (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_generate)
