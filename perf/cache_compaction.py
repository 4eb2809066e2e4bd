"""Side-by-side cost of the cache's holes: decode with compaction on and off, interleaved.

    OMP_NUM_THREADS=1 python perf/cache_compaction.py [--repeats 5]

Prints, per strategy, the median seconds to decode 4 batches of 4 on fashion-sjd2, the span-cache
length at the end of a decode and the ratio; both variants decode the same prompts and seeds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pardecode import get_backbone, get_strategy
from pardecode.core import loop
from pardecode.core.passes import common
from pardecode.fashion.card import class_prompts
from pardecode.planning import profile_for

SETTINGS = [("sjd", {"window": 16}), ("sjd", {"window": 64, "coupling": "gumbel"}), ("sjd2", {})]
NEVER = float("inf")


def decode_all(backbone, name, options, prompts) -> tuple[float, int]:
    """Seconds for 2 seeds x 2 batches of 4 prompts, and the last decode's span-cache length."""
    started, slots = time.perf_counter(), 0
    for seed in range(2):
        for first in (0, 4):
            session = backbone.start(prompts[first : first + 4], backbone.default_sampling)
            strategy = get_strategy(name, **options)
            profile = profile_for(backbone, backbone.default_sampling, 4) if strategy.auto_sized() else None
            decoder = loop.Decoder(backbone, session, strategy, backbone.default_sampling, seed, profile)
            decoder.run()
            slots = decoder.kind.valid.shape[1]
    return time.perf_counter() - started, slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backbone = get_backbone("fashion-sjd2")
    prompts, _ = class_prompts(1)
    default = common.HOLE_FRACTION
    for name, options in SETTINGS:
        seconds = {default: [], NEVER: []}
        slots = {}
        for _ in range(args.repeats):
            for fraction in seconds:
                common.HOLE_FRACTION = fraction
                spent, slots[fraction] = decode_all(backbone, name, options, prompts)
                seconds[fraction].append(spent)
        common.HOLE_FRACTION = default
        on, off = statistics.median(seconds[default]), statistics.median(seconds[NEVER])
        label = " ".join([name] + [f"{k}={v}" for k, v in options.items()])
        print(
            f"{label:28s} compacted {on:5.2f} s ({slots[default]} cache slots)   "
            f"holes kept {off:5.2f} s ({slots[NEVER]} slots)   speed-up {off / on:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
