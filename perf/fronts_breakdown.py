"""Where a placed-slot pass's time goes on the default model (core/fronts.py): the forward, the
strategy's propose and verify, processing (CFG, mask, softmax) and the framework's own checks and
cache bookkeeping ("fronts"). One thread; medians over repeats of each setting.

    python perf/fronts_breakdown.py                 # this tree's core/fronts.py
    python perf/fronts_breakdown.py --against REF   # also REF's core/fronts.py and strategies
                                                          # (a git ref), interleaved with this tree's
                                                          # in one run
    python perf/fronts_breakdown.py --syncs         # count host syncs per pass instead

With `--against`, REF's whole `pardecode/strategies` package is checked out into a temporary git
worktree and imported as a separate package (`pardecode._strategies_ref`) beside this tree's, so
both the framework side and the strategies' own propose/verify are compared; the rest of the
package (core, backbones) is this tree's.

"fronts" is the pass minus forward, propose, verify and processing: what the placed-slot path
itself costs. Host syncs are counted as the tensor-to-Python conversions (bool, int, float, item,
tolist, nonzero) made by the framework while it runs, outside the strategy and the forward.
"""

from __future__ import annotations

import argparse
import collections
import atexit
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

import pardecode  # noqa: E402
from pardecode.core import fronts as fronts_now  # noqa: E402
from pardecode.core import loop  # noqa: E402
from pardecode.core.sampling import target_probs  # noqa: E402

SETTINGS = [("zipar", {"window": 1}), ("zipar", {"window": 14}), ("pjd", {}), ("pjd", {"rows": 1}),  # rows=1: lossless
            ("sjd_pac_tree", {"window": 32})]
PARTS = ("forward", "propose", "verify", "process", "fronts")


def load_fronts(ref: str):
    """core/fronts.py as of git `ref`, as a module sharing this tree's Commits (strategies build those)."""
    source = subprocess.run(["git", "show", f"{ref}:pardecode/core/fronts.py"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "fronts_ref.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pardecode.core._fronts_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.Commits = fronts_now.Commits
    return module


def load_strategies(ref: str) -> dict:
    """name -> strategy class, from REF's strategies package: a temporary git worktree's copy of
    it imported as `pardecode._strategies_ref` (its `..core` imports resolve to this tree's core)."""
    top = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True).stdout.strip())
    checkout = Path(tempfile.mkdtemp()) / "ref"
    subprocess.run(["git", "-C", str(top), "worktree", "add", "--detach", "--quiet", str(checkout), ref], check=True)
    try:
        copy = Path(tempfile.mkdtemp()) / "strategies"
        shutil.copytree(checkout / "pardecode" / "strategies", copy)
    finally:
        subprocess.run(["git", "-C", str(top), "worktree", "remove", "--force", str(checkout)], check=True)
    atexit.register(shutil.rmtree, copy.parent, True)
    name = "pardecode._strategies_ref"
    spec = importlib.util.spec_from_file_location(name, copy / "__init__.py", submodule_search_locations=[str(copy)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    classes = {}
    package.pardecode_register_strategies(lambda key, cls, doc: classes.__setitem__(key, cls))
    return classes


class Clock:
    def __init__(self):
        self.spent = collections.defaultdict(float)
        self.inside = 0  # > 0 while the strategy, processing or the forward runs
        self.stepping = False  # True while a Fronts.step runs
        self.strategy = 0  # > 0 while the strategy's propose or verify runs (the forward excluded)

    def wrap(self, name, fn):
        mine = name in ("propose", "verify")

        def timed(*a, **k):
            self.inside += 1
            self.strategy += mine
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.spent[name] += time.perf_counter() - t
                self.inside -= 1
                self.strategy -= mine
        return timed


def make_strategy(version, name, options):
    """A strategy from this tree's registry, or from a ref's classes (`load_strategies`)."""
    classes = version[1]
    return pardecode.get_strategy(name, **options) if classes is None else classes[name](**options)


def run(backbone, version, name, options, batch, seeds, clock):
    """Per-pass ms of each part over decodes of `seeds` (one strategy instance, the version's
    Fronts and strategy classes: (fronts module, classes or None for this tree's))."""
    module = version[0]
    loop.Fronts = module.Fronts
    module.target_probs = clock.wrap("process", target_probs)
    strategy = make_strategy(version, name, options)
    strategy.propose = clock.wrap("propose", strategy.propose)
    strategy.verify = clock.wrap("verify", strategy.verify)
    clock.spent.clear()
    steps, forward, tokens = [], [], []
    for seed in seeds:
        r = pardecode.decode(backbone, strategy, ["a sneaker"] * batch, seed=seed)
        steps += r.trace.step_seconds
        forward += r.trace.forward_seconds
        tokens.append(r.tokens)
    n = len(steps)
    parts = {k: v / n * 1e3 for k, v in clock.spent.items()}
    parts["forward"] = sum(forward) / n * 1e3
    parts["fronts"] = sum(steps) / n * 1e3 - sum(parts.values())
    return parts, n / len(seeds), tokens


def count_syncs(backbone, version, name, options, batch):
    """Host syncs per pass: (the framework's, outside strategy, processing and forward; the
    strategy's own, in propose and verify)."""
    module = version[0]
    clock = Clock()
    count = collections.Counter()
    own = collections.Counter()
    originals = {}
    for attr in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "nonzero"):
        original = getattr(torch.Tensor, attr)
        originals[attr] = original

        def counted(self, *a, _attr=attr, _original=original, **k):
            if clock.stepping and not clock.inside:
                count[_attr] += 1
            elif clock.strategy:
                own[_attr] += 1
            return _original(self, *a, **k)

        setattr(torch.Tensor, attr, counted)
    real_step = module.Fronts.step

    def step(self, *a, **k):
        clock.stepping = True
        try:
            return real_step(self, *a, **k)
        finally:
            clock.stepping = False

    module.Fronts.step = step
    try:
        real_start = backbone.start

        def start(*a, **k):
            session = real_start(*a, **k)
            session.forward = clock.wrap("forward", session.forward)
            return session

        backbone.start = start
        _, passes, _ = run(backbone, version, name, options, batch, [0], clock)
    finally:
        for attr, original in originals.items():
            setattr(torch.Tensor, attr, original)
        del backbone.start
        module.Fronts.step = real_step
    return {k: v / passes for k, v in count.items()}, {k: v / passes for k, v in own.items()}, passes


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="git ref whose core/fronts.py and strategies to time side by side")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1, help="decodes per repeat")
    parser.add_argument("--syncs", action="store_true")
    parser.add_argument("--only", help="strategy name to restrict to")
    parser.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    args = parser.parse_args(argv)
    backbone = pardecode.get_backbone("fashion")
    versions = {"new": (fronts_now, None)}
    if args.against:
        versions = {args.against: (load_fronts(args.against), load_strategies(args.against)), "new": (fronts_now, None)}
    settings = [s for s in SETTINGS if args.only in (None, s[0])]
    batches = [int(b) for b in args.batches.split(",")]
    if args.syncs:
        for name, options in settings:
            for batch in batches:
                for label, version in versions.items():
                    per_pass, own, passes = count_syncs(backbone, version, name, options, batch)
                    for who, counts in (("framework", per_pass), ("strategy", own)):
                        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(counts.items()))
                        print(f"{name} {options} batch {batch} [{label}]: {sum(counts.values()):.2f} host syncs per pass "
                              f"by the {who} over {passes:.0f} passes ({detail})")
        return 0
    for name, options in settings:
        for batch in batches:
            clock = Clock()
            for version in versions.values():  # warm-up
                run(backbone, version, name, options, batch, [99], clock)
            samples = {label: collections.defaultdict(list) for label in versions}
            reference = {}
            for _ in range(args.repeats):
                for label, version in versions.items():
                    parts, passes, tokens = run(backbone, version, name, options, batch, range(args.seeds), clock)
                    for k, v in parts.items():
                        samples[label][k].append(v)
                    if label in reference:
                        assert all(torch.equal(a, b) for a, b in zip(reference[label], tokens))
                    reference[label] = tokens
            if len(reference) == 2:
                a, b = reference.values()
                same = all(torch.equal(x, y) for x, y in zip(a, b))
            for label in versions:
                med = {k: statistics.median(samples[label][k]) for k in PARTS}
                total = sum(med.values())
                line = ", ".join(f"{k} {med[k]:.3f}" for k in PARTS)
                print(f"{name} {options} batch {batch} [{label}]: {passes:.0f} passes, pass {total:.3f} ms = {line}")
            if len(versions) == 2:
                changes = []
                for part in ("propose", "verify", "fronts"):
                    old, new = (statistics.median(samples[label][part]) for label in versions)
                    changes.append(f"{part} {old * 1e3:.0f} -> {new * 1e3:.0f} us ({new / old:.2f}x)")
                print(f"    per pass: {', '.join(changes)}; tokens identical: {same}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
