"""Where one pass's time goes on the default model, phase by phase of the loop.

The Decoder's step is propose -> prepare (the pass kind builds the inputs) -> forward -> process
(the pass kind's targets: CFG, layout mask, softmax) -> verify -> commit (the pass kind applies the
answer) -> bookkeeping (the rest: per-row progress, the trace). Each phase is timed by wrapping
it; medians over repeats after a warm-up, one thread. `--syncs` counts host synchronisations per
pass instead (tensor-to-Python conversions: bool, int, float, item, tolist, nonzero), split into
the framework's and the strategy's.

    python perf/pass_breakdown.py [--repeats 5] [--only NAME] [--syncs]

Comparing two trees side by side: perf/overhead_against.py.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time

import torch

import pardecode
from pardecode.core.passes.placed_slots import PlacedSlots
from pardecode.core.passes.single_window import SingleWindow

SETTINGS = [  # (strategy, options, batch)
    ("ar", {}, 1),
    ("ar", {}, 8),
    ("sjd", {"window": 16}, 1),
    ("sjd", {"window": 4}, 8),
    ("sjd_pac", {"window": 16}, 1),
    ("sjd_pac", {"window": 4}, 8),
    ("sjd_pac", {"window": 8}, 8),
    ("zipar", {"window": 1}, 4),
    ("pjd", {}, 4),
    ("sjd_pac_tree", {"window": 32}, 1),
]
PHASES = ("propose", "prepare", "forward", "process", "verify", "commit", "bookkeeping")
SYNCS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "nonzero")


class Clock:
    """Seconds per phase; `phase` names the innermost running one (None: the Decoder's own code)."""

    def __init__(self):
        self.spent = collections.defaultdict(float)
        self.phase: str | None = None
        self.syncs = collections.Counter()

    def wrap(self, name, fn):
        def timed(*a, **k):
            outer, self.phase = self.phase, name
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.spent[name] += time.perf_counter() - t
                self.phase = outer

        return timed


def instrument(clock: Clock) -> None:
    for kind in (SingleWindow, PlacedSlots):
        for method, phase in (("prepare", "prepare"), ("targets", "process"), ("commit", "commit")):
            setattr(kind, method, clock.wrap(phase, getattr(kind, method)))
    for attr in SYNCS:
        original = getattr(torch.Tensor, attr)

        def counted(self, *a, _original=original, **k):
            who = "strategy" if clock.phase in ("propose", "verify") else "framework"
            if clock.phase != "forward":
                clock.syncs[who] += 1
            return _original(self, *a, **k)

        setattr(torch.Tensor, attr, counted)


def run(backbone, name, options, batch, seed, clock):
    """(ms per phase, passes) of one decode."""
    strategy = pardecode.get_strategy(name, **options)
    strategy.propose = clock.wrap("propose", strategy.propose)
    strategy.verify = clock.wrap("verify", strategy.verify)
    real_start = backbone.start

    def start(*a, **k):
        session = real_start(*a, **k)
        session.forward = clock.wrap("forward", session.forward)
        return session

    backbone.start = start
    clock.spent.clear()
    clock.syncs.clear()
    try:
        trace = pardecode.decode(backbone, strategy, ["a sneaker"] * batch, seed=seed).trace
    finally:
        del backbone.start
    n = trace.forward_passes
    parts = {k: v / n * 1e3 for k, v in clock.spent.items()}
    parts["bookkeeping"] = sum(trace.step_seconds) / n * 1e3 - sum(parts.values())
    return parts, n, {k: v / n for k, v in clock.syncs.items()}


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="strategy name to restrict to")
    parser.add_argument("--syncs", action="store_true", help="count host synchronisations per pass instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    backbone = pardecode.get_backbone("fashion")
    clock = Clock()
    instrument(clock)
    for name, options, batch in (s for s in SETTINGS if args.only in (None, s[0])):
        run(backbone, name, options, batch, 99, clock)  # warm-up
        if args.syncs:
            _, passes, syncs = run(backbone, name, options, batch, 0, clock)
            print(
                f"{name} {options} batch {batch}: host syncs per pass, framework {syncs.get('framework', 0):.2f}, "
                f"strategy {syncs.get('strategy', 0):.2f} ({passes} passes)"
            )
            continue
        samples = collections.defaultdict(list)
        for seed in range(args.repeats):
            parts, passes, _ = run(backbone, name, options, batch, seed, clock)
            for k in PHASES:
                samples[k].append(parts.get(k, 0.0))
        med = {k: statistics.median(v) for k, v in samples.items()}
        total = sum(med.values())
        framework = total - med["forward"]
        print(
            f"{name} {options} batch {batch}: pass {total:.3f} ms, framework {framework:.3f} ms "
            f"({framework / total:.0%}) = " + ", ".join(f"{k} {med[k]:.3f}" for k in PHASES),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
