"""The `pardecode` command line: one parser over every command, and its one-line errors."""

from __future__ import annotations

import argparse
import sys

from ..core.errors import PardecodeError
from . import bench, certify, finetune, generate, listing, measure, race, speed, train_demo

#: the commands in the order `pardecode --help` lists them
COMMANDS = (
    listing.register,
    generate.register,
    race.register,
    certify.register,
    measure.register_overhead,
    measure.register_profile,
    train_demo.register,
    finetune.register,
    bench.register,
    speed.register,
)


class Parser(argparse.ArgumentParser):
    """argparse with pardecode's one-line errors (argparse would print the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"pardecode: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="pardecode", description="Parallel decoding for AR image generators")
    root.add_argument("--verbose", action="store_true", help="also show third-party logs and progress bars")
    root.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = root.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    for command in sub.choices.values():  # also accepted after the command: `pardecode generate ... --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return root


def report_skipped_plugins() -> None:
    """One line per third-party plugin that failed to load; the rest of pardecode works without it."""
    import warnings

    from ..core.plugins import PluginWarning, plugins

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        skipped = plugins().broken
    for b in skipped:
        print(f"pardecode: warning: plugin {b.plugin!r} skipped: {b.error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verbose:
        from ..core.quiet import set_verbose

        set_verbose(True)
    try:
        report_skipped_plugins()
        return args.func(args)
    except PardecodeError as err:
        if args.debug:
            raise
        print(f"pardecode: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("pardecode: interrupted", file=sys.stderr)
        return 130
