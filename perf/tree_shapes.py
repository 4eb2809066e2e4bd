"""The automatic draft tree against fixed tree shapes on the default model, interleaved.

Every round decodes the same prompt and seed with AR, `sjd_pac_tree window="auto"` and each fixed
shape of `TREE_SHAPES` (the default, 32x4x4, among them), at every batch size, one after another,
so the machine's load falls on all of them alike. The cost profile the automatic tree uses is this
machine's (measured first where missing, as `pardecode speed` does). Reports medians of seconds
per image, and per batch the automatic tree's time against the best fixed shape's and the default's:
wall-clock seconds, then the process's CPU seconds (with one thread, the work done, which other
jobs sharing the cores disturb far less than the wall clock).

    python perf/tree_shapes.py [--batches 1 4 8] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from pardecode import decode, get_backbone, get_strategy
from pardecode.benchmarks.speed import PROMPTS
from pardecode.planning import profile_for
from pardecode.strategies.sjd_pac_tree import TREE_SHAPES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = get_backbone("fashion")
    sampling = backbone.default_sampling
    for b in args.batches:
        profile_for(backbone, sampling, b, measure_missing=True)
    settings = {"ar": ("ar", {}), "auto": ("sjd_pac_tree", {"window": "auto"})}
    settings |= {f"{w}x{k}x{d}": ("sjd_pac_tree", {"window": w, "branches": k, "depth": d}) for w, k, d in TREE_SHAPES}
    times: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    for r in range(args.repeats + 1):  # round 0 warms up
        for b in args.batches:
            for label, (name, options) in settings.items():
                prompts = [PROMPTS[(r + i) % len(PROMPTS)] for i in range(b)]
                cpu = time.process_time()
                result = decode(backbone, get_strategy(name, **options), prompts, sampling=sampling, seed=r)
                if r:
                    times["wall", b, label].append(result.trace.seconds / b)
                    times["cpu", b, label].append((time.process_time() - cpu) / b)
        print(f"round {r}/{args.repeats} done", flush=True)
    for clock in ("wall", "cpu"):
        report(clock, args.batches, settings, times)


def report(clock: str, batches: list[int], settings: dict, times: dict) -> None:
    print(f"\n{clock} seconds per image (medians)\n")
    print("| batch | ar s/image | auto s/image | best fixed | default 32x4x4 | auto / best | auto / default |")
    print("|---|---|---|---|---|---|---|")
    for b in batches:
        med = {label: statistics.median(times[clock, b, label]) for label in settings}
        fixed = {k: v for k, v in med.items() if k not in ("ar", "auto")}
        best = min(fixed, key=fixed.get)
        print(
            f"| {b} | {med['ar']:.4f} | {med['auto']:.4f} | {best}: {fixed[best]:.4f} | {fixed['32x4x4']:.4f} | "
            f"{med['auto'] / fixed[best]:.3f} | {med['auto'] / fixed['32x4x4']:.3f} |"
        )
        print("|  | " + ", ".join(f"{k} {v:.4f}" for k, v in fixed.items()) + " |")


if __name__ == "__main__":
    main()
