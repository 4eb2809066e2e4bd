"""From run records to one summary per strategy setting: passes, speed, quality, acceptance.

Every ratio is taken against AR in the same results, over the prompts, seeds and repeats both have:
- step compression = AR forward passes / the setting's forward passes (summed over matching runs);
- latency ratio = AR's median wall-clock / the setting's (each run's time is first the median over
  its repeats);
- the AR baseline of a setting is the `ar` setting with the same effective sampling (e.g. greedy
  AR for greedy Jacobi), else the first `ar` setting for speed ratios only.
Quality is judged on repeat 0 (repeats reuse the seed, so they decode the same images). A lossless
strategy must match its AR baseline within the spread across seeds: for each metric, a two-sided
two-sample t-test at 95% on the per-seed values. Under the lossless hypothesis both sets of seeds
sample one distribution, so their spread is estimated from both (pooled variance); AR's spread
alone, from a handful of seeds, is itself too noisy a yardstick. With many settings and two metrics,
about one comparison in twenty is flagged by chance: rerun a flagged setting with more seeds.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from ..core.trace import Trace
from .comparisons import Comparison, compare, pooled_per_image
from .quality import Judge, Quality, Spread, judge_for, unpack_images
from .scoring import MetricScore, score_setting
from .suite import Suite

AR = "ar"
METRICS = (("prompt_agreement", "agreement"), ("frechet_distance", "FD"))


@attrs.frozen
class SettingSummary:
    """One row of a report table."""

    setting: str
    strategy: str
    lossless: bool
    sampling: dict[str, Any]  # effective sampling
    runs: int
    expected_runs: int
    length: int  # tokens per image
    passes: float  # mean forward passes per run
    tokens_per_pass: float  # mean tokens committed per pass per image
    seconds: float  # median wall-clock per run
    forward_share: float  # fraction of the loop's time spent in the backbone's forward passes
    baseline: str | None  # the AR setting ratios are taken against
    compression: float | None
    latency_ratio: float | None
    quality: Quality | None
    seed_quality: dict[int, Quality]
    check: str  # the lossless check's verdict
    acceptance: list[float]  # mean tokens committed by the pass that produced each span offset
    #: pooled-image quality against the AR baseline with the same sampling (`comparisons`), or None
    versus_ar: Comparison | None = None
    #: lossy strategies: mean over images of the summed per-pass total variation bound, else None
    tv_bound: float | None = None
    #: counts of (pass, image) pairs that committed 1, 2, 3, ... tokens (index 0: one token), repeat 0
    acceptance_histogram: list[int] = attrs.field(factory=list)
    seconds_per_image: float | None = None  # median seconds per run / batch
    latency_batch1: float | None = None  # median seconds of one image, where the suite decodes batch 1
    peak_memory: int | None = None  # bytes, the largest over the runs (see peak_memory_kind)
    peak_memory_kind: str | None = None  # "cuda max_memory_allocated" or "process peak RSS"
    #: scores of the suite's metrics (other than the judge's) on the pooled repeat-0 images
    scores: list[MetricScore] = attrs.field(factory=list)


@attrs.frozen
class BackboneSummary:
    label: str
    name: str
    batch: int
    settings: list[SettingSummary]
    real: tuple[Spread, Spread] | None  # real images' (agreement, FD) at the pooled sample size
    real_n: int | None


def merged_trace(records: Sequence[dict[str, Any]]) -> Trace:
    """One trace whose rows are every image of `records` (passes zero-padded: rows that are done
    commit 0), so the loop's own statistics (tokens per pass, acceptance by offset) pool them."""
    rows = [row for r in records for row in r["committed"]]
    longest = max(map(len, rows))
    committed = torch.tensor([row + [0] * (longest - len(row)) for row in rows], dtype=torch.long).T
    return Trace(widths=[], committed=committed, forward_seconds=[], step_seconds=[])


def acceptance_histogram(records: Sequence[dict[str, Any]]) -> list[int]:
    """Counts of (pass, image) pairs by tokens committed: [#1, #2, ...] (passes of finished rows, 0, left out)."""
    rows = [np.asarray(row, dtype=np.int64).ravel() for r in records for row in r["committed"]]
    counts = np.bincount(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
    return counts[1:].tolist() if len(counts) > 1 else []


def _peak_memory(records: Sequence[dict[str, Any]]) -> tuple[int | None, str | None]:
    measured = [r for r in records if r.get("peak_memory") is not None]
    if not measured:
        return None, None
    top = max(measured, key=lambda r: r["peak_memory"])
    return int(top["peak_memory"]), top.get("peak_memory_kind")


def _key(record: dict[str, Any], *fields: str) -> tuple:
    return tuple(record["key"][f] for f in fields)


def _per_run_seconds(records: Sequence[dict[str, Any]]) -> dict[tuple, float]:
    """(prompt, seed) -> median wall-clock over that run's repeats."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        groups[_key(r, "prompt", "seed")].append(r["seconds"])
    return {k: statistics.median(v) for k, v in groups.items()}


def compression(records: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> float | None:
    ar = {_key(r, "prompt", "seed", "repeat"): r["forward_passes"] for r in baseline}
    mine = {_key(r, "prompt", "seed", "repeat"): r["forward_passes"] for r in records}
    common = mine.keys() & ar.keys()
    return sum(ar[k] for k in common) / sum(mine[k] for k in common) if common else None


def latency_ratio(records: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> float | None:
    ar, mine = _per_run_seconds(baseline), _per_run_seconds(records)
    common = sorted(mine.keys() & ar.keys())
    if not common:
        return None
    return statistics.median(ar[k] for k in common) / statistics.median(mine[k] for k in common)


def judge_images(records: Sequence[dict[str, Any]], judge: Judge) -> tuple[Quality | None, dict[int, Quality]]:
    """Pooled quality over repeat-0 images and quality per seed (each needs at least 2 images)."""
    by_seed: dict[int, tuple[list[np.ndarray], list[str]]] = defaultdict(lambda: ([], []))
    for r in records:
        if r["key"]["repeat"] != 0 or r.get("images") is None or not judge.accepts(r["key"]["prompt"]):
            continue
        images = unpack_images(r["images"])
        by_seed[r["key"]["seed"]][0].append(images)
        by_seed[r["key"]["seed"]][1].extend([r["key"]["prompt"]] * len(images))

    def score(images: list[np.ndarray], prompts: list[str]) -> Quality | None:
        return judge.evaluate(np.concatenate(images), prompts) if len(prompts) >= 2 else None

    per_seed = {seed: q for seed, (ims, ps) in sorted(by_seed.items()) if (q := score(ims, ps)) is not None}
    pooled = score([i for ims, _ in by_seed.values() for i in ims], [p for _, ps in by_seed.values() for p in ps])
    return pooled, per_seed


#: two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (2.0 beyond: 2.04 at 30, 1.96 at infinity)
T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_tolerance(ar: Sequence[float], mine: Sequence[float]) -> float:
    """Largest |mean(mine) - mean(ar)| a pooled two-sample t-test at 95% accepts (AR needs >= 2 values)."""
    df = len(ar) + len(mine) - 2
    pooled = (
        np.var(ar, ddof=1) * (len(ar) - 1) + (np.var(mine, ddof=1) * (len(mine) - 1) if len(mine) > 1 else 0.0)
    ) / df
    quantile = T_975[df - 1] if df <= len(T_975) else 2.0
    return float(quantile * math.sqrt(pooled * (1 / len(ar) + 1 / len(mine))))


def lossless_check(lossless: bool, is_baseline: bool, mine: dict[int, Quality], ar: dict[int, Quality] | None) -> str:
    """Whether a lossless setting's quality matches its AR baseline within the spread across seeds."""
    if is_baseline:
        return "reference"
    if not lossless:
        return "lossy: not checked"
    if ar is None:
        return "n/a: no AR at the same sampling"
    if not mine or not ar:
        return "n/a: no quality"
    if len(ar) < 2:
        return "n/a: needs >= 2 seeds"
    outside, flat = [], []
    for field, name in METRICS:
        base, values = [getattr(q, field) for q in ar.values()], [getattr(q, field) for q in mine.values()]
        tolerance = t_tolerance(base, values)
        diff = float(np.mean(values) - np.mean(base))
        if tolerance == 0 and diff != 0:  # every seed scored the same (few, discrete values): no t-test
            flat.append(name)
        elif abs(diff) > tolerance + 1e-9:
            outside.append(f"{name} {diff:+.3g} outside ±{tolerance:.2g}")
    if outside:
        return "DIFFERS: " + "; ".join(outside)
    return "matches AR" if not flat else f"n/a: no spread across seeds in {', '.join(flat)}"


def _baseline(
    label: str, sampling: dict[str, Any], settings: dict[str, list[dict[str, Any]]]
) -> tuple[str | None, bool]:
    """(the AR setting to compare with, whether its sampling is the same)."""
    ars = [s for s, recs in settings.items() if recs[0]["key"]["strategy"] == AR]
    same = [s for s in ars if settings[s][0]["effective_sampling"] == sampling]
    if same:
        return same[0], True
    return (ars[0], False) if ars else (None, False)


def _setting_summary(
    label: str,
    by_setting: dict[str, list[dict[str, Any]]],
    judged: dict[str, tuple[Quality | None, dict[int, Quality]]],
    judge: Judge | None,
    expected_runs: int,
) -> SettingSummary:
    recs = by_setting[label]
    first = recs[0]
    base, same_sampling = _baseline(label, first["effective_sampling"], by_setting)
    pooled, per_seed = judged.get(label, (None, {}))
    trace = merged_trace([r for r in recs if r["key"]["repeat"] == 0] or recs)
    loop = sum(r["loop_seconds"] for r in recs)
    seconds = statistics.median(_per_run_seconds(recs).values())
    peak, peak_kind = _peak_memory(recs)
    if judge is None:
        check = "n/a: no evaluator"
    else:
        ar_seeds = judged.get(base, (None, {}))[1] if base and same_sampling else None
        check = lossless_check(first["lossless"], label == base, per_seed, ar_seeds)
    return SettingSummary(
        setting=label,
        strategy=first["key"]["strategy"],
        lossless=first["lossless"],
        sampling=first["effective_sampling"],
        runs=len(recs),
        expected_runs=expected_runs,
        length=first["length"],
        passes=float(np.mean([r["forward_passes"] for r in recs])),
        tokens_per_pass=trace.tokens_per_pass,
        seconds=seconds,
        forward_share=sum(r["forward_seconds"] for r in recs) / loop if loop else math.nan,
        baseline=base,
        compression=compression(recs, by_setting[base]) if base else None,
        latency_ratio=latency_ratio(recs, by_setting[base]) if base else None,
        quality=pooled,
        seed_quality=per_seed,
        check=check,
        acceptance=trace.accepted_by_offset(first["length"]).tolist(),
        tv_bound=float(np.mean([v for r in recs for v in r["tv_bound"]])) if "tv_bound" in first else None,
        acceptance_histogram=acceptance_histogram([r for r in recs if r["key"]["repeat"] == 0] or recs),
        seconds_per_image=seconds / first["batch"],
        latency_batch1=seconds if first["batch"] == 1 else None,
        peak_memory=peak,
        peak_memory_kind=peak_kind,
    )


def _versus_ar(
    rows: list[SettingSummary], by_setting: dict[str, list[dict[str, Any]]], judge: Judge | None
) -> list[SettingSummary]:
    """Rows with their pooled-image comparison against the AR baseline of the same sampling."""
    reference = getattr(judge, "reference_stats", None)
    if judge is None or reference is None:
        return rows
    per_image: dict[str, Any] = {}

    def pooled(label: str):
        if label not in per_image:
            per_image[label] = pooled_per_image(by_setting[label], judge)
        return per_image[label]

    by_label = {r.setting: r for r in rows}
    stats: list[Any] = []
    out = []
    for row in rows:
        base = by_label.get(row.baseline) if row.baseline else None
        if base is None or base.setting == row.setting or base.sampling != row.sampling:
            out.append(row)
            continue
        mine, ar = pooled(row.setting), pooled(base.setting)
        if mine is None or ar is None:
            out.append(row)
            continue
        if not stats:
            stats.append(reference())
        versus = compare(mine, ar, stats[0])
        out.append(attrs.evolve(row, versus_ar=versus))
    return out


#: metrics whose numbers a backbone's judge already reports (with seeds' spread and the checks against AR)
JUDGED_METRICS = ("fashion",)


def _judge_and_metrics(
    suite: Suite, backbone: str, judges: Callable[[str], Judge | None]
) -> tuple[Judge | None, list[Any]]:
    """(the backbone's judge, the other metrics to score). A suite without `metrics` keeps the backbone's own
    judge (the default model's evaluator on its backbones); one with `metrics` uses the judge only if it names it."""
    names = [m.name for m in suite.metrics]
    judge = judges(backbone) if not names or any(n in JUDGED_METRICS for n in names) else None
    covered = JUDGED_METRICS if judge is not None else ()
    return judge, [m.build() for m in suite.metrics if m.name not in covered]


def summarize(
    suite: Suite, records: Sequence[dict[str, Any]], judges: Callable[[str], Judge | None] = judge_for
) -> list[BackboneSummary]:
    """One summary per backbone of the suite, settings in suite order (settings without runs left out)."""
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for run in suite.runs():
        expected[run.backbone, run.setting.label] += 1
    out = []
    for spec in suite.backbones:
        by_setting: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            if r["key"]["backbone"] == spec.label:
                by_setting[r["key"]["setting"]].append(r)
        by_setting = {s.label: by_setting[s.label] for s in suite.settings if by_setting.get(s.label)}
        judge, scorers = _judge_and_metrics(suite, spec.name, judges)
        judged = {s: judge_images(recs, judge) for s, recs in by_setting.items()} if judge else {}
        rows = [_setting_summary(label, by_setting, judged, judge, expected[spec.label, label]) for label in by_setting]
        rows = _versus_ar(rows, by_setting, judge)
        if scorers:
            rows = [attrs.evolve(r, scores=score_setting(by_setting[r.setting], scorers)) for r in rows]
        pooled_n = max((r.quality.n for r in rows if r.quality), default=None)
        real = judge.real_spread(pooled_n) if judge and pooled_n else None
        out.append(BackboneSummary(spec.label, spec.name, suite.batch, rows, real, pooled_n if real else None))
    return out
