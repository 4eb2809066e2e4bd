"""`pardecode race`: AR against a parallel setting on the same prompts and seeds, timed in one run.

Both decode the same batch with the same seed, alternating which goes first in each round after
an untimed warm-up round, so the machine's load falls on both alike. Each decode is timed whole
(session start included); the medians are printed side by side, and the PNG shows AR's images on
the top rows and the other setting's below.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from ..core.errors import PardecodeError
from .arguments import add_decode_options, build, key_values
from .generate import chosen_strategy


def cmd_race(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    import torch

    from ..api import decode, get_strategy
    from ..imaging import as_array, save_grid_rows

    if args.rounds < 1:
        raise PardecodeError(f"--rounds must be >= 1, got {args.rounds}")
    if args.threads is not None:
        if args.threads < 1:
            raise PardecodeError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    backbone, strategy, sampling = build(args)
    start = key_values(args.start_option, "--start-option")
    strategy, why = chosen_strategy(args, backbone, strategy, sampling, start)
    if why and not args.json:
        print(why)
    prompts = [args.prompt] * args.batch
    racers = {"ar": get_strategy("ar"), strategy.name: strategy}
    if len(racers) == 1:
        raise PardecodeError("nothing to race: the strategy is AR itself (name another with --strategy)")
    seconds: dict[str, list[float]] = {name: [] for name in racers}
    results = {}
    set_up = time.perf_counter() - began  # loading the model, finding the profile, choosing the setting
    for r in range(args.rounds + 1):  # round 0 warms up, untimed
        order = list(racers.items()) if r % 2 else list(racers.items())[::-1]
        for name, racer in order:
            t0 = time.perf_counter()
            results[name] = decode(backbone, racer, prompts, sampling=sampling, seed=args.seed, **start)
            if r:
                seconds[name].append(time.perf_counter() - t0)
        if not args.json and r:
            print(f"round {r}: " + ", ".join(f"{n} {seconds[n][-1]:.2f} s" for n in racers), flush=True)
    ar_s, other_s = (statistics.median(seconds[n]) for n in racers)
    report = {
        "backbone": args.backbone,
        "batch": args.batch,
        "rounds": args.rounds,
        "strategy": strategy.name,
        **({"chosen": why.removeprefix("strategy: ")} if why else {}),
        "seconds_median": {n: round(statistics.median(seconds[n]), 4) for n in racers},
        "forward_passes": {n: results[n].forward_passes for n in racers},
        "speedup": round(ar_s / other_s, 3),
        "setup_seconds": round(set_up, 3),
    }
    if args.out:
        images = [backbone.images(results[n].tokens, results[n].session) for n in racers]
        if any(i is None for i in images):
            report["note"] = f"backbone {args.backbone!r} has no image decoder; no PNG written"
        else:
            grids = torch.stack([torch.as_tensor(as_array(i)) for i in images])  # [2, B, H, W]
            report["out"] = str(save_grid_rows(grids, args.out, scale=args.scale))
    if args.json:
        print(json.dumps(report))
        return 0
    name = strategy.name
    print(
        f"{args.batch} image(s) of {prompts[0]!r} on {args.backbone}, median of {args.rounds} rounds: "
        f"ar {ar_s:.2f} s ({report['forward_passes']['ar']} passes), {name} {other_s:.2f} s "
        f"({report['forward_passes'][name]} passes): {name} is {ar_s / other_s:.2f}x as fast as AR "
        f"(set-up before the first decode: {set_up:.1f} s)"
    )
    if args.out:
        print(report.get("note") or f"wrote {report['out']} (top: ar, bottom: {name})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "race",
        help="AR against a parallel setting: same prompts and seeds, timed side by side",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--prompt", required=True, help="what to draw (e.g. 'a sneaker')")
    add_decode_options(p, default_backbone="fashion", default_strategy=None)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument(
        "--start-option", action="append", metavar="KEY=VALUE", help="backbone start option, e.g. size=[28,28]"
    )
    p.add_argument("--out", help="PNG: AR's images on top, the other setting's below")
    p.add_argument("--scale", type=int, default=4, help="upscale factor of the PNG (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_race)
