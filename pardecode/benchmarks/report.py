"""Markdown from summaries: the report of one results directory, and what changed between two."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from .metrics import BackboneSummary, SettingSummary, summarize
from .quality import Judge, Quality, Spread, judge_for
from .results import ResultsDir
from .suite import Suite

NA = "n/a"


def _num(value: float | None, fmt: str, suffix: str = "") -> str:
    return NA if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:{fmt}}{suffix}"


def _with_n(quality: Quality | None, field: str, fmt: str) -> str:
    return NA if quality is None else f"{getattr(quality, field):{fmt}} (n={quality.n})"


def _spread(spread: Spread, fmt: str) -> str:
    if spread.count < 2:
        return f"{spread.mean:{fmt}} (1 set)"
    return f"{spread.mean:{fmt}} ± {spread.std:{fmt}} ({spread.count} sets)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _sampling(s: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items())


def setting_row(row: SettingSummary) -> list[str]:
    runs = f"{row.runs}" if row.runs == row.expected_runs else f"{row.runs}/{row.expected_runs}"
    return [
        f"`{row.setting}`",
        runs,
        _num(row.passes, ".1f"),
        _num(row.tokens_per_pass, ".2f"),
        _num(row.compression, ".2f", "x"),
        _num(row.seconds, ".3f"),
        _num(row.latency_ratio, ".2f", "x"),
        _with_n(row.quality, "prompt_agreement", ".3f"),
        _with_n(row.quality, "frechet_distance", ".2f"),
        row.check,
    ]


SETTING_HEADER = (
    "setting",
    "runs",
    "forward passes",
    "tokens / pass",
    "step compression",
    "median s / run",
    "latency ratio",
    "prompt agreement",
    "Fréchet distance",
    "quality vs AR",
)


def _memory(row: SettingSummary) -> str:
    return NA if row.peak_memory is None else f"{row.peak_memory / 2**20:.0f} MiB ({row.peak_memory_kind})"


def _histogram(counts: Sequence[int]) -> str:
    return ", ".join(f"{k}: {c}" for k, c in enumerate(counts, start=1) if c) or NA


def decode_statistics(summary: BackboneSummary) -> list[str]:
    """Speed figures every report carries, whatever the metrics: time per image, memory, acceptance lengths."""
    return [
        f"Decode statistics (seconds per image = median seconds per run / {summary.batch}; latency at batch 1 only "
        "where the suite decodes one image per run; acceptance lengths: how many (pass, image) pairs committed "
        "1, 2, 3, ... tokens, repeat 0):",
        "",
        *_table(
            (
                "setting",
                "forward passes",
                "step compression",
                "tokens / pass",
                f"s / image (batch {summary.batch})",
                "latency at batch 1",
                "peak memory",
                "acceptance lengths (tokens: count)",
            ),
            [
                [
                    f"`{r.setting}`",
                    _num(r.passes, ".1f"),
                    _num(r.compression, ".2f", "x"),
                    _num(r.tokens_per_pass, ".2f"),
                    _num(r.seconds_per_image, ".4f"),
                    _num(r.latency_batch1, ".3f"),
                    _memory(r),
                    _histogram(r.acceptance_histogram),
                ]
                for r in summary.settings
            ],
        ),
        "",
    ]


def metric_scores(summary: BackboneSummary) -> list[str]:
    """The suite's metrics per setting, each number with the variant that computed it."""
    rows = [
        [f"`{r.setting}`", f"{score.metric}: {name}", _num(value, ".4g"), str(score.n), score.variant]
        for r in summary.settings
        for score in r.scores
        for name, value in score.values.items()
    ]
    if not rows:
        return []
    return [
        "Metrics on each setting's images (repeat 0, every seed and prompt pooled; numbers of different variants "
        "or image counts are not comparable):",
        "",
        *_table(("setting", "metric", "value", "images", "variant"), rows),
        "",
    ]


def backbone_section(summary: BackboneSummary, plots: dict[str, str]) -> list[str]:
    rows = summary.settings
    if not rows:
        return [f"## Backbone `{summary.label}`", "", "No finished runs yet.", ""]
    lines = [
        f"## Backbone `{summary.label}`",
        "",
        f"{rows[0].length} tokens per image, {summary.batch} images per run (one prompt repeated). "
        "Forward passes and median seconds are per run; step compression and latency ratio are against "
        "the AR baseline in the second table (higher is better).",
        "",
        *_table(SETTING_HEADER, [setting_row(r) for r in rows]),
        "",
        *_table(
            ("setting", "AR baseline", "sampling", "lossless", "forward share of loop time"),
            [
                [
                    f"`{r.setting}`",
                    f"`{r.baseline}`" if r.baseline else NA,
                    _sampling(r.sampling),
                    "yes" if r.lossless else "no",
                    _num(r.forward_share, ".0%"),
                ]
                for r in rows
            ],
        ),
        "",
        *decode_statistics(summary),
        *metric_scores(summary),
    ]
    compared = [r for r in rows if r.versus_ar is not None]
    if compared:
        lines += [
            "Quality against AR on pooled images (setting minus AR; 95% intervals; p-values two-sided: "
            "agreement by a two-proportion z-test, Fréchet distance by a permutation test; a lossless "
            "setting matches AR when neither p-value is below 0.05; see How it was measured):",
            "",
            *_table(
                (
                    "setting",
                    "lossless",
                    "images",
                    "Δ agreement [95%]",
                    "p",
                    "Δ Fréchet [95%]",
                    "p",
                    "reading",
                    "TV bound / image",
                ),
                [
                    [
                        f"`{r.setting}`",
                        "yes" if r.lossless else "no",
                        f"{r.versus_ar.n} vs {r.versus_ar.n_ar}",
                        f"{r.versus_ar.agreement_diff:+.3f} [{r.versus_ar.agreement_interval[0]:+.3f}, "
                        f"{r.versus_ar.agreement_interval[1]:+.3f}]",
                        f"{r.versus_ar.agreement_p:.3f}",
                        f"{r.versus_ar.frechet_diff:+.1f} [{r.versus_ar.frechet_interval[0]:+.1f}, "
                        f"{r.versus_ar.frechet_interval[1]:+.1f}]",
                        f"{r.versus_ar.frechet_p:.3f}",
                        r.versus_ar.verdict(r.lossless),
                        _num(r.tv_bound, ".2f"),
                    ]
                    for r in compared
                ],
            ),
            "",
        ]
    seeded = [r for r in rows if r.seed_quality]
    if seeded:
        lines += [
            "Quality across seeds (mean ± standard deviation of the per-seed values; what *quality vs AR* tests):",
            "",
        ]
        lines += _table(
            ("setting", "seeds", "images / seed", "prompt agreement", "Fréchet distance"),
            [
                [
                    f"`{r.setting}`",
                    str(len(r.seed_quality)),
                    str(min(q.n for q in r.seed_quality.values())),
                    _spread(Spread.of([q.prompt_agreement for q in r.seed_quality.values()]), ".3f"),
                    _spread(Spread.of([q.frechet_distance for q in r.seed_quality.values()]), ".2f"),
                ]
                for r in seeded
            ],
        )
        lines.append("")
    if summary.real is not None:
        agreement, frechet = summary.real
        lines += [
            f"Real Fashion-MNIST test images in disjoint sets of n={summary.real_n} score prompt agreement "
            f"{_spread(agreement, '.3f')} and Fréchet distance {_spread(frechet, '.2f')}: the floor a generator "
            "can reach at this sample size (Fréchet distance shrinks as n grows, so compare at equal n only).",
            "",
        ]
    elif not any(r.quality for r in rows) and not any(r.scores for r in rows):
        lines += [
            "Quality: n/a (this backbone has no image decoder or no evaluator; a suite's `metrics` "
            "such as fid and clip score any backbone that decodes images).",
            "",
        ]
    for caption, file in plots.items():
        lines += [f"![{caption}]({file})", ""]
    return lines


#: what the runner records of each loaded backbone (`runner.backbone_environment`)
BACKBONE_ENVIRONMENT = ("device", "device_name", "dtype", "attention")


def environment_section(sessions: Sequence[dict[str, Any]]) -> list[str]:
    if not sessions:
        return ["## Environment", "", "No session recorded.", ""]
    fields = (
        "shard",
        "date",
        "python",
        "torch",
        "transformers",
        "pardecode",
        "commit",
        "cpu",
        "cpu_count",
        "torch_threads",
        "batch",
        "seeds",
    )
    lines = [
        "## Environment",
        "",
        "One row per process that ran timed runs (a resumed or sharded suite has several).",
        "",
        *_table(fields, [[str(s.get(f, NA)) for f in fields] for s in sessions]),
        "",
    ]
    backbones = [(s.get("shard", NA), label, env) for s in sessions for label, env in s.get("backbones", {}).items()]
    if backbones:
        lines += [
            "Backbones as loaded (device name: torch.cuda.get_device_name on CUDA, else the CPU model; attention: "
            "the model config's `_attn_implementation`, n/a where it has none):",
            "",
            *_table(
                ("shard", "backbone", "device", "device name", "dtype", "attention"),
                [
                    [str(shard), f"`{label}`", *(str(env.get(k, NA)) for k in BACKBONE_ENVIRONMENT)]
                    for shard, label, env in backbones
                ],
            ),
            "",
        ]
    return lines


def measurement_section(suite: Suite) -> list[str]:
    return [
        "## How it was measured",
        "",
        f"- Latency: wall-clock of one `decode` call for a batch of {suite.batch} (prompt encoding and prefill "
        "included, image decoding excluded); each run's time is the median over its "
        f"{suite.repeats} repeat(s), a setting's the median over its runs.",
        f"- {suite.warmup} untimed warm-up decode(s) per setting and process; runs interleaved (repeat, then "
        "seed, then prompt; strategy settings innermost); torch threads pinned (see Environment).",
        "- Forward passes, tokens per pass and acceptance come from the decoding loop's trace, never from a strategy.",
        "- Quality is judged on repeat 0 (repeats share seeds, hence images). *quality vs AR*: for prompt "
        "agreement and Fréchet distance alike, the per-seed values of a lossless setting and of its AR baseline "
        "must pass a two-sided two-sample t-test at 95% (pooled variance: under losslessness both sample one "
        "distribution); otherwise the row says DIFFERS with the difference and the tolerance. About one "
        "comparison in twenty is flagged by chance: confirm a flag with more seeds before believing it.",
        "- Quality against AR on pooled images (all seeds' images together, independent of the seed spread): "
        "prompt agreement by a two-proportion z-test (pooled standard error) with a 95% Wald interval for "
        "the difference; Fréchet distance (each set against the real test images) by a permutation test "
        "(200 random splits of the two sets' pooled images) with a 95% bootstrap percentile interval "
        "(200 resamples of each set). Threshold: p < 0.05, two-sided, per test. A lossy setting is read as "
        "what it costs (agreement lost, Fréchet distance added, with intervals); its TV bound per image is "
        "the mean over images of the per-pass total variation bounds its verdicts reported.",
        "",
    ]


def render(
    suite: Suite,
    summaries: Sequence[BackboneSummary],
    sessions: Sequence[dict[str, Any]],
    plots: dict[str, dict[str, str]],
    results_files: Sequence[str],
) -> str:
    done = sum(r.runs for s in summaries for r in s.settings)
    total = len(suite.runs())
    status = (
        "complete" if done == total else f"INCOMPLETE: {total - done} run(s) missing (resume or merge the other shards)"
    )
    lines = [
        f"# Benchmark `{suite.name}`",
        "",
        *([suite.description.strip(), ""] if suite.description.strip() else []),
        f"Suite fingerprint `{suite.fingerprint}`; {done} of {total} runs ({status}), read from "
        + ", ".join(f"`{f}`" for f in results_files)
        + "; report written "
        + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        + ".",
        "",
    ]
    for summary in summaries:
        lines += backbone_section(summary, plots.get(summary.label, {}))
    lines += measurement_section(suite) + environment_section(sessions)
    return "\n".join(lines).rstrip() + "\n"


def build_report(out: str | Path, judges: Callable[[str], Judge | None] = judge_for, with_plots: bool = True) -> Path:
    """Summarise every results file in `out` (all shards) into report.md and PNG plots."""
    results = ResultsDir(out)
    suite = results.suite()
    with results.lock("report"):
        summaries = summarize(suite, results.records(), judges)
        plots: dict[str, dict[str, str]] = {}
        note = ""
        if with_plots:
            try:
                from .plots import write_plots
            except ImportError:  # matplotlib is an optional extra
                note = "Plots skipped: matplotlib is not installed (`pip install 'pardecode[bench]'`).\n"
            else:
                plots = {s.label: write_plots(s, results.path) for s in summaries}
        text = render(suite, summaries, results.sessions(), plots, [f.name for f in results.results_files()]) + note
        results.write_text("report.json", report_json(suite, summaries, results.sessions()))
        return results.write_text("report.md", text)


def report_json(suite: Suite, summaries: Sequence[BackboneSummary], sessions: Sequence[dict[str, Any]]) -> str:
    """Everything report.md shows, as JSON: per setting the decode statistics, quality, metric scores with variants."""
    return json.dumps(
        {
            "suite": suite.name,
            "fingerprint": suite.fingerprint,
            "batch": suite.batch,
            "seeds": list(suite.seeds),
            "backbones": [attrs.asdict(s) for s in summaries],
            "sessions": list(sessions),
        },
        indent=1,
        default=str,
    )


# ------------------------------------------------------------------------------------ compare


def _change(old: float | None, new: float | None, fmt: str, suffix: str = "") -> str:
    if old is None and new is None:
        return NA
    text = f"{_num(old, fmt, suffix)} → {_num(new, fmt, suffix)}"
    if old is not None and new is not None and old and not math.isnan(old) and not math.isnan(new):
        text += f" ({(new - old) / abs(old):+.1%})"
    return text


#: (figure, format, suffix) of each compared column
COMPARED = (
    ("passes", ".1f", ""),
    ("compression", ".2f", "x"),
    ("seconds", ".3f", ""),
    ("latency_ratio", ".2f", "x"),
    ("prompt_agreement", ".3f", ""),
    ("frechet_distance", ".2f", ""),
)


def _figure(row: SettingSummary | None, name: str) -> float | None:
    if row is None:
        return None
    if name in ("prompt_agreement", "frechet_distance"):
        return getattr(row.quality, name) if row.quality is not None else None
    return getattr(row, name)


def compare(old: Sequence[BackboneSummary], new: Sequence[BackboneSummary]) -> str:
    """Per setting present in either: old → new (relative change) of the headline figures."""
    lines = ["# Benchmark comparison", ""]
    olds = {(b.label, r.setting): r for b in old for r in b.settings}
    news = {(b.label, r.setting): r for b in new for r in b.settings}
    keys = list(dict.fromkeys([*news, *olds]))
    for backbone in dict.fromkeys(k[0] for k in keys):
        rows = []
        for key in (k for k in keys if k[0] == backbone):
            a, b = olds.get(key), news.get(key)
            rows.append(
                [
                    f"`{key[1]}`" + ("" if a and b else " (new)" if b else " (removed)"),
                    *(_change(_figure(a, name), _figure(b, name), fmt, suffix) for name, fmt, suffix in COMPARED),
                ]
            )
        lines += [f"## Backbone `{backbone}`", ""]
        lines += _table(
            (
                "setting",
                "forward passes",
                "step compression",
                "median s / run",
                "latency ratio",
                "prompt agreement",
                "Fréchet distance",
            ),
            rows,
        )
        lines.append("")
    return "\n".join(lines)


def compare_dirs(old: str | Path, new: str | Path, judges: Callable[[str], Judge | None] = judge_for) -> str:
    summaries = [summarize(ResultsDir(d).suite(), ResultsDir(d).records(), judges) for d in (old, new)]
    return compare(*summaries)
