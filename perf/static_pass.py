"""The static pass against the eager pass on the default model, side by side in one process.

    OMP_NUM_THREADS=1 python perf/static_pass.py [--repeats N] [--no-compile] [--json FILE]

Milliseconds per forward pass by window (drafts W: the pass feeds the pending token + W) at batch
1 and 4 (with guidance: 2 and 8 model rows), each pass over a cache half as long as the span, the
modes interleaved pass by pass: eager (`HFSession`), static (`StaticSession`) and static +
compiled (`HFBackbone.compile`; the seconds of each bucket's first call, its compilation, are
reported apart). Then whole decodes at batch 1, interleaved: `ar` and `sjd_pac` window=auto (with
the model's shipped cost profile, so every mode plans the same windows).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import pardecode
from pardecode.adapters.static_kv import bucket_of
from pardecode.core.backbone import Window

WINDOWS = (0, 1, 4, 16, 32, 64)
BATCHES = (1, 4)
PROMPT = "a sneaker"


def primed(backbone, batch: int):
    """A session of `batch` rows after a first pass that cached half the span."""
    session = backbone.start([PROMPT] * batch)
    half = session.layout.length // 2
    tokens = torch.full((batch, half), int(backbone.image_tokens[0]))
    offsets = torch.arange(half).expand(batch, -1)
    session.forward(Window(tokens, offsets, torch.ones(batch, half, dtype=torch.bool), first=True))
    return session


def one_pass(session, width: int) -> float:
    """Seconds of one pass of `width` inputs after the cached half span; the cache is cropped back."""
    batch, cached = session.batch, session.span_slots
    tokens = torch.full((batch, width), 200)
    offsets = (cached + torch.arange(width)).expand(batch, -1)
    window = Window(tokens, offsets, torch.ones(batch, cached + width, dtype=torch.bool), first=False)
    t0 = time.perf_counter()
    session.forward(window)
    seconds = time.perf_counter() - t0
    session.crop(width)
    return seconds


def pass_times(modes: dict, repeats: int) -> tuple[list[dict], dict]:
    rows, compile_seconds = [], {}
    for batch in BATCHES:
        sessions = {name: primed(bb, batch) for name, bb in modes.items()}
        for w in WINDOWS:
            width = w + 1
            if "static+compiled" in modes:  # the bucket's first call compiles it: timed apart
                key = f"batch {batch}, bucket {bucket_of(width)}"
                if key not in compile_seconds:
                    compile_seconds[key] = one_pass(sessions["static+compiled"], width)
            for s in sessions.values():  # warm-up
                one_pass(s, width)
            times = {name: [] for name in sessions}
            for _ in range(repeats):
                for name, s in sessions.items():  # interleaved, pass by pass
                    times[name].append(one_pass(s, width))
            row = {"batch": batch, "window": w, **{n: 1000 * statistics.median(t) for n, t in times.items()}}
            rows.append(row)
            print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return rows, compile_seconds


def decode_times(modes: dict, repeats: int) -> list[dict]:
    rows = []
    profile = modes["eager"].cost_prior()
    for strategy, options in (("ar", {}), ("sjd_pac", {"window": "auto"})):
        times = {name: [] for name in modes}
        for _ in range(repeats + 1):
            for name, bb in modes.items():
                t0 = time.perf_counter()
                pardecode.decode(bb, strategy, [PROMPT], seed=0, strategy_options=options, profile=profile)
                times[name].append(time.perf_counter() - t0)
        row = {"strategy": strategy, **options, **{n: statistics.median(t[1:]) for n, t in times.items()}}
        rows.append(row)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--decode-repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    eager = pardecode.get_backbone("fashion")
    modes = {"eager": eager, "static": pardecode.get_backbone("fashion", static=True)}
    if not args.no_compile:
        compiled = pardecode.get_backbone("fashion", static=True)
        compiled.compile()
        modes["static+compiled"] = compiled
    passes, compile_seconds = pass_times(modes, args.repeats)
    for key, seconds in compile_seconds.items():
        print(f"compile {key}: {seconds:.1f} s", flush=True)
    decodes = decode_times(modes, args.decode_repeats)
    out = {
        "threads": torch.get_num_threads(),
        "ms_per_pass": passes,
        "compile_seconds": compile_seconds,
        "decode_seconds": decodes,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
