"""`pardecode bench`: run a suite, merge shards into a report, or compare two results directories."""

from __future__ import annotations

import argparse
import sys

from ..core.errors import ConfigError
from .arguments import key_values

EPILOG = """examples:
  pardecode bench quick --out runs/quick              run the built-in `quick` suite (resumes if interrupted)
  pardecode bench my_suite.toml --out runs/x --shard 0/2   first of two processes (default: $RANK/$WORLD_SIZE)
  pardecode bench quick --out runs/q --backbone lumina-mgpt --metric fid:stats=coco.npz --metric clip
                                                      FID and CLIP score on a published checkpoint
  pardecode bench --merge runs/x                      one report from every shard's results
  pardecode bench --compare runs/old runs/new         what changed between two results directories
  pardecode bench emu3-parti --dry-run                runs, images and device-hours, from the stored cost profile
  torchrun --nproc-per-node 8 -m pardecode.cli bench emu3-parti --out runs/emu3-parti   one shard per GPU
"""


def cmd_bench(args: argparse.Namespace) -> int:
    from ..benchmarks.report import build_report, compare_dirs

    modes = sum(bool(m) for m in (args.suite, args.merge, args.compare, args.list_suites))
    if modes != 1:
        raise ConfigError("give exactly one of: a SUITE (with --out), --merge DIR, --compare OLD NEW, --list-suites")
    if args.list_suites:
        return _list_suites()
    if args.compare:
        print(compare_dirs(*args.compare))
        return 0
    if args.merge:
        print(f"wrote {build_report(args.merge)}")
        return 0
    return _run(args)


def _list_suites() -> int:
    from ..benchmarks.suite import builtin_suites, load_suite

    for name in builtin_suites():
        try:
            suite = load_suite(name)
        except ConfigError as err:  # e.g. a prompt set whose file the user has not supplied yet
            print(f"{name:<22} {'?':>5} runs  (cannot load here: {str(err).split(': ', 1)[-1][:90]}...)")
            continue
        summary = suite.description.strip().splitlines()[0] if suite.description.strip() else ""
        print(f"{name:<22} {len(suite.runs()):>5} runs  {summary}")
    return 0


def with_metrics(suite, specs: list[str]):
    """The suite with its metrics replaced by --metric NAME[:KEY=VALUE,...] arguments."""
    import attrs

    from ..benchmarks.scoring import parse_metrics

    entries = []
    for spec in specs:
        name, _, options = spec.partition(":")
        entries.append({"name": name, "options": key_values([o for o in options.split(",") if o], f"--metric {name}")})
    return attrs.evolve(suite, metrics=parse_metrics("--metric", entries))


def _run(args: argparse.Namespace) -> int:
    from ..benchmarks.report import build_report
    from ..benchmarks.results import ResultsDir, Shard
    from ..benchmarks.runner import run_suite
    from ..benchmarks.suite import load_suite

    if not args.out and not args.dry_run:
        raise ConfigError("running a suite needs --out DIR (or --dry-run)")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    suite = load_suite(args.suite)
    if args.prompts_file:
        from ..benchmarks.prompt_sets import read_prompts_file

        suite = suite.with_prompts(read_prompts_file(args.prompts_file))
    if args.backbone:
        suite = suite.with_backbone(args.backbone, key_values(args.backbone_option, "--backbone-option"))
    elif args.backbone_option:
        raise ConfigError("--backbone-option needs --backbone")
    if args.metric:
        suite = with_metrics(suite, args.metric)
    shard = Shard.parse(args.shard) if args.shard else Shard.from_env()
    if args.dry_run:
        return _dry_run(suite, shard, args.threads)
    try:
        outcome = run_suite(suite, args.out, shard=shard, threads=args.threads, progress=not args.no_progress)
    except KeyboardInterrupt:
        mine = [run.id for i, run in enumerate(suite.runs()) if shard.takes(i)]
        saved = len(set(mine) & ResultsDir(args.out).done())
        print(
            f"\npardecode: interrupted: {saved} of {len(mine)} runs{'' if shard.count == 1 else f' of shard {shard}'} "
            f"are saved in {args.out}; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(
        f"{suite.name} shard {shard}: {outcome.ran} run(s) in {outcome.seconds:.1f} s, "
        f"{outcome.skipped} already recorded, {outcome.assigned} assigned"
    )
    if args.no_report:
        return 0
    recorded = len({run.id for run in suite.runs()} & ResultsDir(args.out).done())
    total = len(suite.runs())
    if recorded < total:  # other shards are still running: a report now would be partial
        print(
            f"no report yet: {recorded} of {total} runs recorded; once every shard has finished: "
            f"pardecode bench --merge {args.out}"
        )
        return 0
    print(f"wrote {build_report(args.out)}")
    return 0


def _dry_run(suite, shard, threads: int | None) -> int:
    """Print what the suite would cost; loads each backbone for its profile key, decodes nothing."""
    import torch

    from ..benchmarks.estimate import estimate, render
    from ..benchmarks.runner import default_threads

    torch.set_num_threads(threads or default_threads(shard))  # as a run would: profiles are per thread count
    print(render(suite, estimate(suite), shards=shard.count))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` command to the `pardecode` command line."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark suites: forward passes, latency and quality per strategy",
        description="Run a benchmark suite (a TOML file or a built-in name), merge shards, or compare results.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("suite", nargs="?", help="suite TOML file or built-in suite name (see --list-suites)")
    p.add_argument("--out", help="results directory (results.jsonl, report.md, plots)")
    p.add_argument("--shard", metavar="I/N", help="run share I of N (default: $RANK/$WORLD_SIZE, else 0/1)")
    p.add_argument("--threads", type=int, help="torch threads (default: CPU cores / shards)")
    p.add_argument("--backbone", help="run the suite on this backbone instead of its own (e.g. toy for a smoke test)")
    p.add_argument("-B", "--backbone-option", action="append", metavar="KEY=VALUE", help="option of --backbone")
    p.add_argument(
        "--prompts-file",
        metavar="FILE",
        help="run the suite on these prompts instead of its own (.txt: one per line; .jsonl: a prompt field)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print runs, images and estimated device-hours (stored cost profile), decode nothing",
    )
    p.add_argument(
        "--metric",
        action="append",
        metavar="NAME[:KEY=VALUE,...]",
        help="score images with this registered metric instead of the suite's (repeatable; pardecode list)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-report",
        action="store_true",
        help="only record runs (a shard writes the report only once every run is recorded)",
    )
    p.add_argument("--merge", metavar="DIR", help="build DIR/report.md from every shard's results")
    p.add_argument(
        "--compare", nargs=2, metavar=("OLD", "NEW"), help="show what changed between two results directories"
    )
    p.add_argument("--list-suites", action="store_true", help="list the built-in suites")
    p.set_defaults(func=cmd_bench)
