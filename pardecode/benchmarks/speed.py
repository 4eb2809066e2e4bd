"""Seconds per image, side by side with AR: what a user of this machine waits.

`pardecode speed` decodes the same prompts and seeds with `ar`, the default setting (what
`generate` runs without `--strategy`: the exact setting this machine's profile predicts fastest
for the batch), the automatic-window strategies, a ladder of fixed windows and any other strategy
settings asked for (`--also`), at several batch sizes and thread counts, interleaving the settings
so that the machine's load falls on all of them alike. It reports medians of seconds per image,
their ratio to AR's from the same run (> 1: faster than AR), step compression, and how close the
automatic window comes to the best fixed one. The cost profiles the automatic windows use are
measured before timing starts, and their curves are plotted next to the report.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from ..api import choose_strategy, decode, get_backbone, get_strategy
from ..planning import profile_for

PROMPTS = (
    "a t-shirt",
    "a pair of trousers",
    "a pullover",
    "a dress",
    "a coat",
    "a sandal",
    "a shirt",
    "a sneaker",
    "a bag",
    "an ankle boot",
)


@attrs.frozen
class Setting:
    strategy: str
    options: dict[str, Any] = attrs.field(factory=dict)

    @property
    def label(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.strategy} {opts}".strip()


DEFAULT = "default"  # the label of the setting a decode without a named strategy runs (chosen per batch)


def default_settings(windows: Sequence[int]) -> list[Setting]:
    return [Setting("ar"), Setting("sjd"), Setting("sjd", {"coupling": "gumbel"})] + [
        Setting("sjd", {"window": w}) for w in windows
    ]


def run_speed(
    backbone_name: str = "fashion",
    batches: Sequence[int] = (1, 4, 8),
    threads: Sequence[int] = (1, 0),
    windows: Sequence[int] = (1, 2, 4, 8, 16),
    repeats: int = 5,
    out: str | Path | None = None,
    progress: bool = True,
    also: Sequence[Setting] = (),
) -> dict[str, Any]:
    """Time every setting; `threads` 0 means torch's default (what a user gets)."""
    default_threads = torch.get_num_threads()
    backbone = get_backbone(backbone_name)
    sampling = backbone.default_sampling
    settings = default_settings(windows)
    settings += [s for s in also if s not in settings]
    rows = []
    for t in threads:
        torch.set_num_threads(t or default_threads)
        chosen = {}
        for b in batches:  # profiles first: their measurement is not part of any timed decode
            profile_for(backbone, sampling, b, measure_missing=True)
            chosen[b] = choose_strategy(backbone, b, sampling=sampling)
        times: dict[tuple[int, str], list[float]] = defaultdict(list)
        passes: dict[tuple[int, str], list[int]] = defaultdict(list)
        for r in range(repeats + 1):  # round 0 warms up
            prompt = PROMPTS[r % len(PROMPTS)]
            for b in batches:
                for label, strategy in [(s.label, get_strategy(s.strategy, **s.options)) for s in settings] + [
                    (DEFAULT, attrs.evolve(chosen[b].strategy))
                ]:
                    result = decode(backbone, strategy, [prompt] * b, sampling=sampling, seed=r)
                    if r:
                        times[b, label].append(result.trace.seconds / b)
                        passes[b, label].append(result.forward_passes)
            if progress:
                print(f"  threads {t or default_threads}: round {r}/{repeats} done", flush=True)
        for b in batches:
            ar = statistics.median(times[b, "ar"])
            for label in [s.label for s in settings] + [DEFAULT]:
                sec = statistics.median(times[b, label])
                rows.append(
                    {
                        "threads": t or default_threads,
                        "threads_default": t == 0,
                        "batch": b,
                        "setting": label,
                        "chosen": chosen[b].label if label == DEFAULT else None,
                        "seconds_per_image": sec,
                        "speedup_vs_ar": ar / sec,
                        "passes": statistics.mean(passes[b, label]),
                        "step_compression": statistics.mean(passes[b, "ar"]) / statistics.mean(passes[b, label]),
                    }
                )
    torch.set_num_threads(default_threads)
    report = {
        "backbone": backbone_name,
        "sampling": attrs.asdict(sampling),
        "repeats": repeats,
        "rows": rows,
        "also": [s.label for s in also],
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "speed.json").write_text(json.dumps(report, indent=1))
        (out / "speed.md").write_text(render(report))
        plot_profiles(backbone, sampling, batches, threads, default_threads, out / "cost-profile.png")
    return report


def render(report: dict[str, Any]) -> str:
    """Markdown: per thread count and batch, AR, the automatic windows and the best fixed window."""
    lines = [
        f"# Seconds per image on `{report['backbone']}` (guidance {report['sampling']['cfg_scale']}, "
        f"median of {report['repeats']} interleaved rounds)",
        "",
    ]
    by = defaultdict(list)
    for row in report["rows"]:
        by[row["threads"], row["threads_default"]].append(row)
    for (threads, default), rows in by.items():
        lines += [
            f"## {threads} thread(s){' (torch default)' if default else ''}",
            "",
            "| batch | ar s/image | default (chosen setting) | sjd auto | sjd auto, gumbel | best fixed sjd window "
            "| auto / best fixed |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in sorted({r["batch"] for r in rows}):
            at = {r["setting"]: r for r in rows if r["batch"] == b}
            fixed = [r for k, r in at.items() if k.startswith("sjd window=")]  # the ladder, not `--also`
            best = min(fixed, key=lambda r: r["seconds_per_image"])
            auto, coupled, default = at["sjd"], at["sjd coupling=gumbel"], at.get(DEFAULT)

            def cell(r):
                return (
                    f"{r['seconds_per_image']:.4f} s ({r['speedup_vs_ar']:.2f}x, "
                    f"{r['step_compression']:.2f}x fewer passes)"
                )

            chosen = f"{default['chosen']}: {cell(default)}" if default else "-"  # reports before it existed
            lines.append(
                f"| {b} | {at['ar']['seconds_per_image']:.4f} | {chosen} | {cell(auto)} | {cell(coupled)} | "
                f"{best['setting'].split('window=')[1]}: {cell(best)} | "
                f"{best['seconds_per_image'] / auto['seconds_per_image']:.2f} |"
            )
        lines.append("")
        also = report.get("also", [])
        if also:
            lines += ["| batch | setting | s/image | vs AR | fewer passes |", "|---|---|---|---|---|"]
            for b in sorted({r["batch"] for r in rows}):
                at = {r["setting"]: r for r in rows if r["batch"] == b}
                lines += [
                    f"| {b} | {label} | {at[label]['seconds_per_image']:.4f} | {at[label]['speedup_vs_ar']:.2f}x | "
                    f"{at[label]['step_compression']:.2f}x |"
                    for label in also
                ]
            lines.append("")
    lines += [
        "Ratios > 1 are faster than AR (same prompts, seeds and run). The default is the exact setting",
        "`generate` runs without `--strategy` at that batch. `auto / best fixed` > 1: the automatic sjd",
        "window beat every fixed window of the ladder.",
        "",
    ]
    return "\n".join(lines)


def plot_profiles(backbone, sampling, batches, threads, default_threads, path: Path) -> None:
    """The cost curves the automatic windows used: ms per pass against window, one line per batch."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(threads), figsize=(5 * len(threads), 3.6), squeeze=False)
    for ax, t in zip(axes[0], threads):
        torch.set_num_threads(t or default_threads)
        profile = profile_for(backbone, sampling, max(batches), measure_missing=True)
        for b, row in zip(profile.batches, profile.seconds):
            ax.plot(profile.windows, [1e3 * s for s in row], marker="o", label=f"batch {b}")
        ax.set_xscale("symlog", base=2)
        ax.set_xlabel("draft window W (0 = AR)")
        ax.set_ylabel("ms per pass")
        ax.set_title(f"{backbone.name}, {t or default_threads} thread(s)")
        ax.legend(fontsize=8)
    torch.set_num_threads(default_threads)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
