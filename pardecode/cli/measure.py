"""`pardecode overhead` and `pardecode profile`: what a pass costs on this machine."""

from __future__ import annotations

import argparse
import json
import statistics

from ..core.errors import PardecodeError
from .arguments import add_decode_options, build, key_values


def cmd_profile(args: argparse.Namespace) -> int:
    """Measure and store the cost of one pass by batch size and window (`pardecode.planning`)."""
    import attrs
    import torch

    from ..planning import measure, with_stored

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    backbone, _, sampling = build(args)
    if any(b < 1 for b in args.batches):
        raise PardecodeError(f"--batches values must be >= 1, got {args.batches}")
    start = key_values(args.start_option, "--start-option")
    settings = [] if args.settings == ["none"] else args.settings  # None: every setting
    profile = with_stored(
        measure(
            backbone,
            sorted(set(args.batches)),
            sampling=sampling,
            start_options=start,
            rounds=args.rounds,
            settings=settings,
        )
    )
    path = profile.save()
    if args.write_prior:  # the same figures, keyed to no machine: what a backbone ships as its prior
        prior = attrs.evolve(profile, key={}, source="prior", observed=0)
        with open(args.write_prior, "w") as f:
            json.dump(attrs.asdict(prior), f, indent=1)
    if args.json:
        print(json.dumps({"path": str(path), **attrs.asdict(profile)}))
        return 0
    print(
        f"ms per pass on {args.backbone} ({profile.key['device']}, {profile.key['dtype']}, "
        f"{profile.key['threads']} threads, guidance {'on' if profile.key['guidance'] else 'off'}):"
    )
    print("  batch " + "".join(f"{'W=' + str(w):>9}" for w in profile.windows))
    for b, row in zip(profile.batches, profile.seconds):
        print(f"  {b:>5} " + "".join(f"{1e3 * t:>9.2f}" for t in row))
    print("  tokens per pass (calibration)" + "".join(f"{t:>9.2f}" for t in profile.tokens))
    for label, curve in profile.tokens_by.items():
        print(f"  {label:>29}" + "".join(f"{t:>9.2f}" for t in curve))
    print(f"stored in {path}")
    return 0


def cmd_overhead(args: argparse.Namespace) -> int:
    """Framework time per pass outside the backbone's forward, and its ratio to the forward time."""
    from ..api import decode

    backbone, strategy, sampling = build(args)
    runs = []
    for r in range(args.repeats + 1):
        res = decode(backbone, strategy, [args.prompt] * args.batch, sampling=sampling, seed=args.seed + r)
        if r:  # the first run warms up
            runs.append(res.trace)
    forward = statistics.median(s for t in runs for s in t.forward_seconds)
    overhead = statistics.median(s - f for t in runs for s, f in zip(t.step_seconds, t.forward_seconds))
    report = {
        "backbone": args.backbone,
        "strategy": strategy.name,
        "window": getattr(strategy, "window", 0),
        "batch": args.batch,
        "passes": sum(t.forward_passes for t in runs),
        "forward_ms_median": round(forward * 1e3, 4),
        "overhead_ms_median": round(overhead * 1e3, 4),
        "overhead_to_forward": round(overhead / forward, 4),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['strategy']} (window {report['window']}, batch {args.batch}) on {args.backbone}, "
            f"{report['passes']} passes: forward {report['forward_ms_median']:.3f} ms, framework "
            f"{report['overhead_ms_median']:.3f} ms per pass (median), ratio {report['overhead_to_forward']:.3f}"
        )
    return 0


def register_overhead(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("overhead", help="framework time per pass outside the forward (toy backbone by default)")
    add_decode_options(p, default_backbone="toy", default_window=32)
    p.set_defaults(batch=8)
    p.add_argument("--repeats", type=int, default=5, help="timed decodes after one warm-up (default: %(default)s)")
    p.add_argument("--prompt", default="a sneaker", help="prompt of every row (default: %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_overhead)


def register_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure and store what one pass costs here, by batch size and window")
    add_decode_options(p, default_backbone="fashion")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8], metavar="B", help="batch sizes to measure")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per setting")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument(
        "--settings",
        nargs="+",
        metavar="LABEL",
        help="exact settings to calibrate besides the reference sjd (each costs whole decodes at every window): "
        "sjd_pac, sjd:maximal, sjd:gumbel, tree (the automatic draft tree's shapes), or none "
        "(default: all of them; one left out is ranked by sjd's calibration)",
    )
    p.add_argument(
        "--start-option", action="append", metavar="KEY=VALUE", help="backbone start option, e.g. size=[28,28]"
    )
    p.add_argument(
        "--write-prior",
        metavar="PATH",
        help="also write the profile as a prior to ship beside a checkpoint (cost_prior.json)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)
