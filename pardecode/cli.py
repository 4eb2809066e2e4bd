"""The `pardecode` command line."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from .core.errors import PardecodeError


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PardecodeError(f"{flag} takes KEY=VALUE, got {pair!r}")
        out[key.replace("-", "_")] = _value(value)
    return out


def _window(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'auto', got {text!r}") from None


REFERENCE = "default: the backbone's reference setting"


def _add_decode_options(p: argparse.ArgumentParser, default_backbone: str, default_window: int | None = None) -> None:
    p.add_argument("--backbone", default=default_backbone, help="registered backbone name, see `pardecode list` (default: %(default)s)")
    p.add_argument("-B", "--backbone-option", action="append", metavar="KEY=VALUE", help="backbone option, e.g. path=/ckpt (repeatable; `pardecode list` shows each backbone's)")
    p.add_argument("--strategy", default="sjd", help="registered strategy name, see `pardecode list` (default: %(default)s)")
    p.add_argument("--compile", action="store_true", help="run the backbone's forward through torch.compile (slower "
                   "on the default model on a CPU: measured in HFBackbone.compile's docstring)")
    p.add_argument("-S", "--strategy-option", action="append", metavar="KEY=VALUE", help="strategy option, e.g. init=repeat (repeatable; `pardecode list` shows each strategy's)")
    window_default = f"default: {default_window}" if default_window else "default: the strategy's own, 'auto' for the built-ins"
    p.add_argument("--window", type=_window, help="draft window of strategies that take one: an integer, or 'auto' "
                   f"(chosen per pass for throughput from this machine's cost profile) ({window_default})")
    p.add_argument("--cfg", type=float, dest="cfg_scale", help=f"classifier-free guidance scale, 1 = off ({REFERENCE})")
    p.add_argument("--top-k", type=int, help=f"keep the k most likely tokens, 0 = off ({REFERENCE})")
    p.add_argument("--top-p", type=float, help=f"nucleus sampling mass, 1 = off ({REFERENCE})")
    p.add_argument("--temperature", type=float, help=f"sampling temperature, 0 = greedy ({REFERENCE})")
    p.add_argument("--batch", type=int, default=1, help="images decoded together (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.set_defaults(default_window=default_window)


def _strategy_options(args) -> dict[str, Any]:
    """-S options plus --window, refusing a window the strategy has no use for or one given twice."""
    from .core.options import options_of
    from .core.plugins import plugins

    opts = _options(args.strategy_option, "--strategy-option")
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


def _build(args):
    import attrs

    from .api import get_backbone, get_strategy

    strategy_opts = _strategy_options(args)
    strategy = get_strategy(args.strategy, **strategy_opts)
    backbone = get_backbone(args.backbone, **_options(args.backbone_option, "--backbone-option"))
    if getattr(args, "compile", False):
        if not hasattr(backbone, "compile"):
            raise PardecodeError(f"--compile needs a transformers backbone; {args.backbone!r} has no compiled forward")
        backbone.compile()
    overrides = {k: getattr(args, k) for k in ("temperature", "top_k", "top_p", "cfg_scale") if getattr(args, k) is not None}
    sampling = attrs.evolve(backbone.default_sampling, **overrides)
    if args.batch < 1:
        raise PardecodeError(f"--batch must be >= 1, got {args.batch}")
    return backbone, strategy, sampling


def cmd_list(args) -> int:
    from .api import list_plugins

    listing = list_plugins()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind in ("strategies", "backbones"):
        entries = listing[kind]
        flag = "-S" if kind == "strategies" else "-B"
        print(f"{kind} (options: {flag} KEY=VALUE):")
        width = max((len(e["name"]) for e in entries), default=0)
        for e in entries:
            print(f"  {e['name']:<{width}}  {e['description']}")
            options = [_describe_option(o) for o in e["options"]]
            if e["more_options"]:
                options.append("...")
            print(f"  {'':<{width}}  options: {', '.join(options) or 'none'}")
            if kind == "strategies":
                print(f"  {'':<{width}}  claim: {e['claim']['text'] if e['claim'] else 'none declared'}")
    for b in listing["broken"]:
        print(f"skipped plugin {b['plugin']!r}: {b['error']}")
    return 0


def _describe_option(option: dict[str, Any]) -> str:
    kind = f": {option['type']}" if option["type"] else ""
    return f"{option['name']}{kind} (required)" if option["required"] else f"{option['name']}{kind} = {option['default']!r}"


def cmd_generate(args) -> int:
    from .core.loop import decode
    from .imaging import save_grid

    backbone, strategy, sampling = _build(args)
    start = _options(args.start_option, "--start-option")
    result = decode(backbone, strategy, [args.prompt] * args.batch, sampling=sampling, seed=args.seed, **start)
    length = result.tokens.shape[1]
    report = {
        "backbone": args.backbone,
        "strategy": strategy.name,
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
    ar_seconds = _ar_estimate(backbone, sampling, args.batch, length, start) if strategy.name != "ar" else None
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
        if result.trace.setup_seconds > 0.05:
            print(f"(measured this machine's cost profile first, once: {result.trace.setup_seconds:.1f} s)")
        if args.out:
            print(report.get("note") or f"wrote {report['out']}")
    return 0


def _ar_estimate(backbone, sampling, batch: int, length: int, start: dict) -> float | None:
    """Seconds AR would take for this batch, from the stored cost profile (None if there is none)."""
    from .core.cost import CostProfile, profile_key

    profile = CostProfile.load(profile_key(backbone, sampling, start))
    if profile is None or batch not in profile.batches:
        return None
    return length * profile.pass_seconds(batch, 0)


def cmd_profile(args) -> int:
    """Measure and store the cost of one pass by batch size and window (`pardecode.core.cost`)."""
    import torch

    import attrs

    from .core.cost import measure, with_stored

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    backbone, _, sampling = _build(args)
    if any(b < 1 for b in args.batches):
        raise PardecodeError(f"--batches values must be >= 1, got {args.batches}")
    start = _options(args.start_option, "--start-option")
    profile = with_stored(measure(backbone, sorted(set(args.batches)), sampling=sampling, start_options=start,
                                  rounds=args.rounds))
    path = profile.save()
    if args.json:
        print(json.dumps({"path": str(path), **attrs.asdict(profile)}))
        return 0
    print(f"ms per pass on {args.backbone} ({profile.key['device']}, {profile.key['dtype']}, "
          f"{profile.key['threads']} threads, guidance {'on' if profile.key['guidance'] else 'off'}):")
    print("  batch " + "".join(f"{'W=' + str(w):>9}" for w in profile.windows))
    for b, row in zip(profile.batches, profile.seconds):
        print(f"  {b:>5} " + "".join(f"{1e3 * t:>9.2f}" for t in row))
    print("  tokens per pass (calibration)" + "".join(f"{t:>9.2f}" for t in profile.tokens))
    print(f"stored in {path}")
    return 0


def cmd_overhead(args) -> int:
    """Framework time per pass outside the backbone's forward, and its ratio to the forward time."""
    from .core.loop import decode

    backbone, strategy, sampling = _build(args)
    runs = []
    for r in range(args.repeats + 1):
        res = decode(backbone, strategy, [args.prompt] * args.batch, sampling=sampling, seed=args.seed + r)
        if r:  # the first run warms up
            runs.append(res.trace)
    forward = statistics.median(s for t in runs for s in t.forward_seconds)
    overhead = statistics.median(s - f for t in runs for s, f in zip(t.step_seconds, t.forward_seconds))
    report = {
        "backbone": args.backbone, "strategy": strategy.name, "window": getattr(strategy, "window", 0),
        "batch": args.batch, "passes": sum(t.forward_passes for t in runs),
        "forward_ms_median": round(forward * 1e3, 4), "overhead_ms_median": round(overhead * 1e3, 4),
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


class _Parser(argparse.ArgumentParser):
    """argparse with pardecode's one-line errors (argparse would print the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"pardecode: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="pardecode", description="Parallel decoding for AR image generators")
    root.add_argument("--verbose", action="store_true", help="also show third-party logs and progress bars")
    root.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered strategies and backbones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("generate", help="decode images for a prompt and write a PNG grid",
                       description="Decode images for a prompt and write a PNG grid.",
                       epilog="`pardecode list` shows every strategy and backbone with its options, types and defaults.")
    p.add_argument("--prompt", required=True, help="what to draw (the default model knows the ten Fashion-MNIST classes, e.g. 'a sneaker')")
    _add_decode_options(p, default_backbone="fashion")
    p.add_argument("--start-option", action="append", metavar="KEY=VALUE", help="backbone start option, e.g. size=[28,28]")
    p.add_argument("--out", help="PNG grid to write")
    p.add_argument("--scale", type=int, default=4, help="upscale factor of the PNG grid (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("overhead", help="framework time per pass outside the forward (toy backbone by default)")
    _add_decode_options(p, default_backbone="toy", default_window=32)
    p.set_defaults(batch=8)
    p.add_argument("--repeats", type=int, default=5, help="timed decodes after one warm-up (default: %(default)s)")
    p.add_argument("--prompt", default="a sneaker", help="prompt of every row (default: %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_overhead)

    p = sub.add_parser("profile", help="measure and store what one pass costs here, by batch size and window")
    _add_decode_options(p, default_backbone="fashion")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8], metavar="B", help="batch sizes to measure")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per setting")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--start-option", action="append", metavar="KEY=VALUE", help="backbone start option, e.g. size=[28,28]")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)

    from .benchmarks.cli import register as register_bench
    from .benchmarks.speed import register as register_speed
    from .fashion.cli import register as register_train_demo
    from .finetune.cli import register as register_finetune
    from .testing.cli import register as register_certify

    for register in (register_train_demo, register_finetune, register_bench, register_speed, register_certify):
        register(sub)
    for command in sub.choices.values():  # also accepted after the command: `pardecode generate ... --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return root


def _report_skipped_plugins() -> None:
    """One line per third-party plugin that failed to load; the rest of pardecode works without it."""
    import warnings

    from .core.plugins import PluginWarning, plugins

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        skipped = plugins().broken
    for b in skipped:
        print(f"pardecode: warning: plugin {b.plugin!r} skipped: {b.error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verbose:
        from .core.quiet import set_verbose

        set_verbose(True)
    try:
        _report_skipped_plugins()
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


if __name__ == "__main__":
    sys.exit(main())
