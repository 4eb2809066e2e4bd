"""Measure what `pardecode certify` detects: the negative controls at several bias strengths and
seeds (power), and exact strategies over seeds (false alarms).

    python benchmarks/certify_power.py power --samples 20000 --seeds 10
    python benchmarks/certify_power.py calibration --samples 20000 --seeds 10
    python benchmarks/certify_power.py times
    python benchmarks/certify_power.py null --samples 20000 --draws 1000000

power: for each control (`pardecode.testing.controls`) and strength, the deviation is the largest
total variation distance between the control's sequence distribution and AR's over the batched runs
of a certification (every reference and sampling setting), estimated from `--tv-rows` decoded rows
each (`deviation`), and the detection rate is the share of `--seeds` full certifications
(`check_exact`, seeds 0..S-1) that flag it.
calibration: exact built-ins certified with the same seeds: how many certifications raise a false
alarm, and the share of the individual tests' p-values below 0.01 and 0.05 (about 1% and 5% when
the tests are calibrated). times: `pardecode certify NAME` (`testing.certify`) of every registered
strategy at its defaults, with its verdict, wall-clock and CPU seconds (run with --threads 1 on an
idle machine, CPU seconds equal the wall-clock time of one core). null: certifications of an exact
sampler, simulated without decoding: each test of a real certification of --strategy is fed
multinomial draws from its exact distribution, binned as the certification bins, so the share of
flagged certifications is the false-alarm rate the asymptotic p-values really give. Prints markdown
tables; --json writes every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from pardecode import decode, get_strategy
from pardecode.testing import DEFAULT_SAMPLES, check_exact, default_references
from pardecode.testing.controls import CONTROLS
from pardecode.testing.references import describe

CHUNK = 100_000  # rows decoded at once when estimating a deviation
STRENGTHS = (0.05, 0.1, 0.2, 0.4, 1.0)
EXACT = (
    ("sjd", {}),
    ("sjd_pac_tree", {"window": 4, "branches": 3, "depth": 2}),
    ("zipar", {"window": 3}),
    ("pjd", {"rows": 1}),
)


def deviation(strategy, rows: int, seed: int = 10**6) -> tuple[float, str]:
    """(the largest TV, where): over the batched runs of a certification (every default reference
    and sampling setting, the first prompt), the total variation distance between the strategy's
    sequence distribution and AR's, estimated from `rows` decoded rows each (the plug-in estimate
    minus its expected value under no deviation, averaged over multinomial draws of that size)."""
    rng = np.random.default_rng(0)
    worst, where = 0.0, ""
    for ref in default_references():
        for sampling in ref.settings:
            exact = ref.exact(ref.prompts[0], sampling)
            counts = np.zeros(ref.sequences, dtype=np.int64)
            for k, start in enumerate(range(0, rows, CHUNK)):
                n = min(CHUNK, rows - start)
                tokens = decode(ref.backbone, strategy, [ref.prompts[0]] * n, sampling=sampling, seed=seed + k).tokens
                counts += ref.counts(tokens)
            bias = np.mean([0.5 * np.abs(rng.multinomial(rows, exact) / rows - exact).sum() for _ in range(20)])
            tv = max(0.0, 0.5 * float(np.abs(counts / rows - exact).sum()) - float(bias))
            if tv >= worst:
                worst, where = tv, f"{ref.name}, {describe(sampling)}"
    return worst, where


def power(args) -> dict:
    rows = []
    print(f"| control | strength | largest TV to AR | where | detected ({args.samples} rows per run) |")
    print("|---|---|---|---|---|")
    for cls in CONTROLS:
        if args.controls and cls.name not in args.controls:
            continue
        for strength in args.strengths:
            control = cls(strength=strength)
            tv, where = deviation(control, args.tv_rows) if args.tv_rows else (float("nan"), "not estimated")
            detected = [check_exact(control, samples=args.samples, seed=s).deviation_detected
                        for s in range(args.seeds)]
            rows.append({"control": cls.name, "strength": strength, "tv": tv, "where": where,
                         "detected": sum(detected), "seeds": args.seeds})
            print(f"| {cls.name} | {strength:g} | {tv:.4f} | {where} | {sum(detected)}/{args.seeds} |", flush=True)
    return {"samples": args.samples, "tv_rows": args.tv_rows, "rows": rows}


def calibration(args) -> dict:
    rows = []
    print(f"| strategy | false alarms ({args.samples} rows per run) | tests | p < 0.01 | p < 0.05 "
          "| seconds per certification |")
    print("|---|---|---|---|---|---|")
    for name, options in EXACT:
        strategy = get_strategy(name, **options)
        alarms, p_values, seconds = 0, [], []
        for s in range(args.seeds):
            report = check_exact(strategy, samples=args.samples, seed=s)
            alarms += report.deviation_detected
            p_values += [t.p_value for t in report.tests]
            seconds.append(report.seconds)
        p = np.array(p_values)
        row = {"strategy": name, "options": options, "false_alarms": alarms, "seeds": args.seeds, "tests": len(p),
               "below_0.01": float((p < 0.01).mean()), "below_0.05": float((p < 0.05).mean()),
               "seconds": float(np.median(seconds))}
        rows.append(row)
        label = name + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")
        print(f"| {label} | {alarms}/{args.seeds} | {len(p)} | {row['below_0.01']:.3f} | {row['below_0.05']:.3f} | "
              f"{row['seconds']:.1f} |", flush=True)
    return {"samples": args.samples, "rows": rows}


def times(args) -> dict:
    from pardecode.core.plugins import plugins
    from pardecode.testing import certify

    rows = []
    print("| strategy | claim | certified at | verdict | tests | seconds | CPU seconds |")
    print("|---|---|---|---|---|---|---|")
    for name in plugins().strategies.names():
        wall, cpu = time.perf_counter(), time.process_time()
        result = certify(name, samples=args.samples)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        verdict = "deviation" if result.deviation_detected else "no deviation"
        options = ", ".join(f"{k}={v!r}" for k, v in result.options.items()) or "defaults"
        count = len(result.report.tests) or f"{len(result.report.checks)} checks"
        rows.append({"strategy": name, "claim": result.claim.text, "options": result.options, "mode": result.mode,
                     "deviation_detected": result.deviation_detected, "seconds": wall, "cpu_seconds": cpu})
        print(f"| {name} | {result.claim.text} | {options} | {verdict} | {count} | {wall:.1f} | {cpu:.1f} |",
              flush=True)
    return {"samples": args.samples, "threads": args.threads, "rows": rows}


def null(args) -> dict:
    """Certifications of an exact sampler, simulated: the tests of a real certification of
    `args.strategy` (their binning), each fed multinomial draws from its exact distribution."""
    from pardecode.testing.stats import chi2_sf_array, null_statistics

    report = check_exact(args.strategy, samples=args.samples, greedy=False)
    tests, rng = report.tests, np.random.default_rng(0)
    p = np.ones((args.draws, len(tests)))
    for i in range(0, len(tests), 2):  # chi-square and G read the same histogram
        pearson, g = null_statistics(tests[i].bins, args.draws, rng)
        p[:, i], p[:, i + 1] = chi2_sf_array(pearson, tests[i].df), chi2_sf_array(g, tests[i + 1].df)
    rows = []
    print(f"{len(tests)} tests of `certify {args.strategy}` at {args.samples} rows, "
          f"{args.draws} simulated certifications")
    print("| alpha (Holm) | certifications flagged | per-test rejections at alpha / tests, worst (test) |")
    print("|---|---|---|")
    for alpha in args.alphas:
        level = alpha / len(tests)
        rate = float((p.min(1) <= level).mean())
        per_test = (p <= level).mean(0)
        worst = int(per_test.argmax())
        rows.append({"alpha": alpha, "flagged": rate, "per_test": per_test.tolist(), "level": level})
        print(f"| {alpha:g} | {rate:.2e} ({rate / alpha:.2f} alpha) | "
              f"{per_test[worst]:.1e} = {per_test[worst] / level:.1f} x "
              f"({tests[worst].name}: {tests[worst].method}) |", flush=True)
    return {"strategy": args.strategy, "samples": args.samples, "draws": args.draws,
            "tests": [f"{t.name}: {t.method}" for t in tests], "rows": rows}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("power", "calibration", "times", "null"))
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help="rows per batched run of a certification")
    p.add_argument("--seeds", type=int, default=10, help="certifications per setting (seeds 0..N-1)")
    p.add_argument("--strengths", type=float, nargs="+", default=STRENGTHS, help="control bias strengths")
    p.add_argument("--controls", nargs="+", help="only these controls (default: every one)")
    p.add_argument("--tv-rows", type=int, default=400_000,
                   help="rows decoded per reference and setting to estimate a control's deviation (0: not estimated)")
    p.add_argument("--draws", type=int, default=200_000, help="null: simulated certifications")
    p.add_argument("--strategy", default="sjd", help="null: whose certification's tests are simulated")
    p.add_argument("--alphas", type=float, nargs="+", default=(1e-3, 5e-4, 2.5e-4), help="null: family-wise levels")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    figures = {"power": power, "calibration": calibration, "times": times, "null": null}[args.what](args)
    figures["seconds"] = time.perf_counter() - start
    print(f"({figures['seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
