"""Argument helpers every `pardecode` command shares: KEY=VALUE options, the decode flags, and the
backbone, strategy and sampling they name."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..core.errors import PardecodeError

REFERENCE = "default: the backbone's reference setting"


def parse_value(text: str) -> Any:
    """A JSON value when `text` is one (1, 0.5, true, [28,28]), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_values(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """{key: value} from repeated KEY=VALUE arguments of `flag` (dashes in keys become underscores)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PardecodeError(f"{flag} takes KEY=VALUE, got {pair!r}")
        out[key.replace("-", "_")] = parse_value(value)
    return out


def window_arg(text: str) -> int | str:
    """argparse type of --window: an integer or 'auto'."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'auto', got {text!r}") from None


CHOSEN = "the fastest exact setting for the batch, by this machine's cost profile"


def add_decode_options(
    p: argparse.ArgumentParser,
    default_backbone: str,
    default_window: int | None = None,
    default_strategy: str | None = "sjd",
) -> None:
    """The flags of a command that decodes: backbone, strategy, their options, sampling, batch, seed.

    `default_strategy=None`: without --strategy the command runs `pardecode.choose_strategy`'s choice."""
    p.add_argument(
        "--backbone",
        default=default_backbone,
        help="registered backbone name, see `pardecode list` (default: %(default)s)",
    )
    p.add_argument(
        "-B",
        "--backbone-option",
        action="append",
        metavar="KEY=VALUE",
        help="backbone option, e.g. path=/ckpt (repeatable; `pardecode list` shows each backbone's)",
    )
    p.add_argument(
        "--strategy",
        default=default_strategy,
        help=f"registered strategy name, see `pardecode list` (default: {default_strategy or CHOSEN})",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the backbone's forward through torch.compile; with -B static=true (transformers "
        "backbones) every pass after the prompt has fixed shapes, one graph per window bucket "
        "(figures in HFBackbone.compile's docstring and docs/design.md)",
    )
    p.add_argument(
        "-S",
        "--strategy-option",
        action="append",
        metavar="KEY=VALUE",
        help="strategy option, e.g. init=repeat (repeatable; `pardecode list` shows each strategy's)",
    )
    window_default = (
        f"default: {default_window}" if default_window else "default: the strategy's own, 'auto' for the built-ins"
    )
    p.add_argument(
        "--window",
        type=window_arg,
        help="draft window of strategies that take one: an integer, or 'auto' "
        f"(chosen per pass for throughput from this machine's cost profile) ({window_default})",
    )
    p.add_argument("--cfg", type=float, dest="cfg_scale", help=f"classifier-free guidance scale, 1 = off ({REFERENCE})")
    p.add_argument("--top-k", type=int, help=f"keep the k most likely tokens, 0 = off ({REFERENCE})")
    p.add_argument("--top-p", type=float, help=f"nucleus sampling mass, 1 = off ({REFERENCE})")
    p.add_argument("--temperature", type=float, help=f"sampling temperature, 0 = greedy ({REFERENCE})")
    p.add_argument("--batch", type=int, default=1, help="images decoded together (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.set_defaults(default_window=default_window)


def strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    """-S options plus --window, refusing a window the strategy has no use for or one given twice."""
    from ..core.options import options_of
    from ..core.plugins import plugins

    opts = key_values(args.strategy_option, "--strategy-option")
    if args.strategy is None:  # chosen later, by the cost profile
        if opts or args.window is not None:
            raise PardecodeError("-S and --window need --strategy: without one the strategy and its window are chosen")
        return opts
    if args.window is None:
        window, flag = args.default_window, None
    else:
        window, flag = args.window, f"--window {args.window}"
    if window is None:
        return opts
    factory = plugins().strategies.get(args.strategy).factory
    takes_window = any(o.name == "window" for o in options_of(factory)[0])
    if flag is None:  # a command's own default: only for strategies that take a window
        if takes_window and "window" not in opts:
            opts["window"] = window
        return opts
    if not takes_window:
        raise PardecodeError(f"{flag} does not apply: strategy {args.strategy!r} takes no window")
    if "window" in opts and opts["window"] != window:
        raise PardecodeError(f"window given twice: -S window={opts['window']} and {flag}; give one")
    opts["window"] = window
    return opts


def build(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(backbone, strategy, sampling) named by the decode flags (`add_decode_options`); the strategy
    is None when the command chooses it (no --strategy where that is the default)."""
    import attrs

    from ..api import get_backbone, get_strategy

    strategy_opts = strategy_options(args)
    strategy = get_strategy(args.strategy, **strategy_opts) if args.strategy is not None else None
    backbone = get_backbone(args.backbone, **key_values(args.backbone_option, "--backbone-option"))
    if getattr(args, "compile", False):
        if not hasattr(backbone, "compile"):
            raise PardecodeError(f"--compile needs a transformers backbone; {args.backbone!r} has no compiled forward")
        backbone.compile()
    overrides = {
        k: getattr(args, k) for k in ("temperature", "top_k", "top_p", "cfg_scale") if getattr(args, k) is not None
    }
    sampling = attrs.evolve(backbone.default_sampling, **overrides)
    if args.batch < 1:
        raise PardecodeError(f"--batch must be >= 1, got {args.batch}")
    return backbone, strategy, sampling
