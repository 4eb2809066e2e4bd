"""`pardecode list`: the registered strategies, backbones and metrics with their options."""

from __future__ import annotations

import argparse
import json
from typing import Any


def cmd_list(args: argparse.Namespace) -> int:
    from ..api import list_plugins

    listing = list_plugins()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind, where in (
        ("strategies", "-S KEY=VALUE"),
        ("backbones", "-B KEY=VALUE"),
        ("metrics", "a suite's metrics = [{ name, options }]"),
    ):
        entries = listing[kind]
        print(f"{kind} (options: {where}):")
        width = max((len(e["name"]) for e in entries), default=0)
        for e in entries:
            print(f"  {e['name']:<{width}}  {e['description']}")
            options = [describe_option(o) for o in e["options"]]
            if e["more_options"]:
                options.append("...")
            print(f"  {'':<{width}}  options: {', '.join(options) or 'none'}")
            if kind == "strategies":
                print(f"  {'':<{width}}  claim: {e['claim']['text'] if e['claim'] else 'none declared'}")
                if e["aliases"]:
                    print(f"  {'':<{width}}  also known as: {', '.join(e['aliases'])}")
    for b in listing["broken"]:
        print(f"skipped plugin {b['plugin']!r}: {b['error']}")
    return 0


def describe_option(option: dict[str, Any]) -> str:
    """`name: type = default`, or `name: type (required)`."""
    kind = f": {option['type']}" if option["type"] else ""
    return (
        f"{option['name']}{kind} (required)"
        if option["required"]
        else f"{option['name']}{kind} = {option['default']!r}"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="registered strategies, backbones and metrics")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
