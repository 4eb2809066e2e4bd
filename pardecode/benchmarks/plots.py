"""PNG plots of a backbone's summary (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from .metrics import BackboneSummary
from .quality import Spread


def _pyplot():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARKERS = "osD^vP*Xh<>"


def _styles(rows) -> dict[str, dict[str, str]]:
    """Setting -> colour (one per setting) and marker (one per strategy), shared by both plots."""
    markers = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(dict.fromkeys(r.strategy for r in rows))}
    return {r.setting: {"color": f"C{i % 10}", "marker": markers[r.strategy]} for i, r in enumerate(rows)}


def _save(fig, path: Path) -> str:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    tmp.replace(path)
    return path.name


def compression_vs_quality(summary: BackboneSummary, path: Path) -> str | None:
    """Step compression against each quality metric: one point per setting, marker shape per strategy."""
    rows = [r for r in summary.settings if r.quality is not None and r.compression is not None]
    if not rows:
        return None
    plt = _pyplot()
    styles = _styles(rows)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"wspace": 0.3})
    for ax, field, name in (
        (axes[0], "prompt_agreement", "prompt agreement (higher is better)"),
        (axes[1], "frechet_distance", "Fréchet distance (lower is better)"),
    ):
        for r in rows:
            spread = Spread.of([getattr(q, field) for q in r.seed_quality.values()]) if r.seed_quality else None
            error = spread.std if spread is not None and spread.count > 1 else None
            ax.errorbar(
                r.compression,
                getattr(r.quality, field),
                yerr=error,
                linestyle="none",
                capsize=3,
                markersize=7,
                label=r.setting,
                **styles[r.setting],
            )
        ax.set_xlabel("step compression vs AR (x)")
        ax.set_ylabel(name)
        ax.margins(x=0.1, y=0.15)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle(f"{summary.label}: step compression vs quality (pooled images; bars: standard deviation across seeds)")
    out = _save(fig, path)
    plt.close(fig)
    return out


def pareto(summary: BackboneSummary, path: Path) -> str | None:
    """Speed against quality: step compression and seconds per image against prompt agreement and
    Fréchet distance; AR's seed spread (mean ± standard deviation across seeds) shaded; lossless
    settings filled, lossy ones hollow; the Pareto front of each panel dashed."""
    rows = [r for r in summary.settings if r.quality is not None and r.compression is not None]
    if not rows:
        return None
    plt = _pyplot()
    styles = _styles(rows)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), gridspec_kw={"wspace": 0.25, "hspace": 0.3})
    ar_rows = [r for r in rows if r.strategy == "ar" and r.seed_quality]
    for col, (field, name, higher) in enumerate(
        (
            ("prompt_agreement", "prompt agreement (higher is better)", True),
            ("frechet_distance", "Fréchet distance (lower is better)", False),
        )
    ):
        for row_i, (speed, speed_name, faster_high) in enumerate(
            (
                ("compression", "step compression vs AR (x)", True),
                ("seconds_per_image", "seconds per image (median)", False),
            )
        ):
            ax = axes[row_i, col]
            for ar in ar_rows:
                spread = Spread.of([getattr(q, field) for q in ar.seed_quality.values()])
                if spread.count > 1:
                    ax.axvspan(
                        spread.mean - spread.std,
                        spread.mean + spread.std,
                        color="0.85",
                        zorder=0,
                        label=f"AR seed spread ({ar.setting})",
                    )
            points = []
            for r in rows:
                # the mean of per-seed values, the quantity whose spread across AR's seeds is shaded
                # (a Fréchet distance depends on n: per-seed and pooled values are not comparable)
                per_seed = [getattr(q, field) for q in r.seed_quality.values()]
                x = float(sum(per_seed) / len(per_seed)) if per_seed else getattr(r.quality, field)
                y = r.compression if speed == "compression" else r.seconds / max(summary.batch, 1)
                style = styles[r.setting]
                ax.plot(
                    x,
                    y,
                    linestyle="none",
                    marker=style["marker"],
                    markersize=8,
                    color=style["color"],
                    markerfacecolor=style["color"] if r.lossless else "none",
                    markeredgewidth=1.6,
                    label=r.setting,
                )
                points.append((x, y))
            front = [
                (x, y)
                for x, y in points
                if not any(
                    (ox >= x if higher else ox <= x) and (oy >= y if faster_high else oy <= y) and (ox, oy) != (x, y)
                    for ox, oy in points
                )
            ]
            front.sort()
            if len(front) > 1:
                ax.plot(*zip(*front), linestyle="--", color="0.4", linewidth=1, zorder=1)
            ax.set_xlabel(f"{name}\nmean over seeds")
            ax.set_ylabel(speed_name)
            ax.grid(alpha=0.3)
            ax.margins(x=0.1, y=0.12)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, 1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle(
        f"{summary.label}: speed against quality (filled: lossless, hollow: lossy; shaded: AR's seed spread; "
        "dashed: Pareto front)",
        fontsize=10,
    )
    out = _save(fig, path)
    plt.close(fig)
    return out


def acceptance_by_position(summary: BackboneSummary, path: Path) -> str | None:
    """Mean tokens committed by the pass that produced each position of the image span."""
    rows = [r for r in summary.settings if r.acceptance]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    styles = _styles(rows)
    for r in rows:
        ax.plot(
            range(len(r.acceptance)), r.acceptance, label=r.setting, linewidth=1.2, color=styles[r.setting]["color"]
        )
    ax.set_xlabel("position in the generated span (token offset)")
    ax.set_ylabel("tokens committed by the pass\nthat produced this position (mean)")
    ax.set_title(f"{summary.label}: accepted tokens by position")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    out = _save(fig, path)
    plt.close(fig)
    return out


def write_plots(summary: BackboneSummary, directory: Path) -> dict[str, str]:
    """Caption -> file name of every plot written for this backbone."""
    plots = {
        "speed against quality (Pareto)": pareto(summary, directory / f"{summary.label}-pareto.png"),
        "step compression vs quality": compression_vs_quality(
            summary, directory / f"{summary.label}-compression-quality.png"
        ),
        "accepted tokens by position": acceptance_by_position(summary, directory / f"{summary.label}-acceptance.png"),
    }
    return {caption: file for caption, file in plots.items() if file}
