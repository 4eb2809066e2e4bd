"""`pardecode certify NAME`: test a registered strategy against the exact distributions of the
reference backbones, or against greedy AR, as its claim calls for (`pardecode.testing.certify`).

Exit status: 0 when no deviation is detected, 1 when one is, 2 for a usage error (an unknown
strategy, a bad option), as for every pardecode command.
"""

from __future__ import annotations

import argparse
import json

from ..core.errors import ConfigError
from .arguments import key_values


def cmd_certify(args: argparse.Namespace) -> int:
    from ..testing.certify import certify

    if args.samples < 100:
        raise ConfigError(f"--samples must be >= 100, got {args.samples}")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {args.alpha}")
    options = key_values(args.strategy_option, "--strategy-option")
    result = certify(args.name, options, samples=args.samples, seed=args.seed, alpha=args.alpha)
    print(json.dumps(result.to_dict()) if args.json else result.text())
    return 1 if result.deviation_detected else 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..testing.checks import ALPHA, DEFAULT_SAMPLES

    p = sub.add_parser(
        "certify",
        help="test that a strategy keeps AR's distribution (exit 0: no deviation, 1: deviation)",
        description="Decode reference backbones whose distributions are known exactly and test what the strategy "
        f"commits: chi-square and G tests with simulated p-values, family-wise false-alarm rate {ALPHA:g} "
        "(Holm). Exit 0 when no deviation is detected, 1 when one is, 2 for a usage error.",
        epilog="docs/certify.md explains the tests, their power and the claims "
        "(`pardecode list` shows each strategy's).",
    )
    p.add_argument("name", metavar="NAME", help="registered strategy name (built-in or plugin), see `pardecode list`")
    p.add_argument(
        "-S",
        "--strategy-option",
        action="append",
        metavar="KEY=VALUE",
        help="strategy option, e.g. window=4 (repeatable); a strategy exact only at some setting is "
        "certified there unless told otherwise",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help="rows of each batched run (default: %(default)s; batch-1 decodes: 1 per 80, at least 100)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=ALPHA,
        help="family-wise false-alarm rate, split among the tests by Holm's method (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the first run, the others follow from it (default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_certify)
