"""`pardecode speed`: seconds per image side by side with AR (the timing is `pardecode.benchmarks.speed`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import key_values

if TYPE_CHECKING:
    from ..benchmarks.speed import Setting


def parse_setting(text: str) -> Setting:
    """A `pardecode.benchmarks.speed.Setting` from `NAME` or `NAME:KEY=VALUE,KEY=VALUE` (e.g.
    `pjd:mask=causal`); the strategy is built once here, so an unknown name or option is refused
    before any timing starts."""
    from ..api import get_strategy
    from ..benchmarks.speed import Setting

    name, _, rest = text.partition(":")
    options = key_values([pair for pair in rest.split(",") if pair], "--also")
    get_strategy(name, **options)
    return Setting(name, options)


def cmd_speed(args: argparse.Namespace) -> int:
    from ..benchmarks.speed import render, run_speed
    from ..core.errors import ConfigError

    if args.repeats < 1 or min(args.batches) < 1 or min(args.threads) < 0 or min(args.windows) < 1:
        raise ConfigError("--repeats, --batches and --windows take integers >= 1, --threads integers >= 0")
    also = [parse_setting(text) for text in args.also]
    report = run_speed(args.backbone, args.batches, args.threads, args.windows, args.repeats, args.out, also=also)
    print(render(report))
    print(f"wrote {Path(args.out) / 'speed.md'}, speed.json and cost-profile.png")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("speed", help="seconds per image side by side with AR, by batch size and threads")
    p.add_argument("--backbone", default="fashion", help="registered backbone name (default: %(default)s)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8], help="batch sizes (default: 1 4 8)")
    p.add_argument(
        "--threads", type=int, nargs="+", default=[1, 0], help="torch threads; 0 = torch's default (default: 1 0)"
    )
    p.add_argument(
        "--windows",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8, 16],
        help="fixed sjd windows to compare (default: 1 2 4 8 16)",
    )
    p.add_argument(
        "--also",
        nargs="+",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="other strategy settings to time beside AR, e.g. zipar:window=1 pjd:mask=causal sjd_pac_tree",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up (default: %(default)s)")
    p.add_argument(
        "--out",
        default="runs/speed",
        help="directory for speed.md, speed.json and cost-profile.png (default: %(default)s)",
    )
    p.set_defaults(func=cmd_speed)
