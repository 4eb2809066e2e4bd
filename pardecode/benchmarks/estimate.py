"""A suite's cost before it runs (`pardecode bench SUITE --dry-run`): runs, images, passes, device-hours.

Nothing is decoded. Each backbone is loaded once (a cost profile is keyed by the model's architecture,
device and dtype) and started on one prompt for its span length. Passes per image: AR's span length;
a parallel setting's length divided by the tokens per pass the stored profile's calibration decodes
measured at its window (SJD's; a lossy or tree strategy commits more per pass, so its estimate is
high). Seconds: those passes times the profile's seconds per pass at the suite's batch and the
setting's window. Without a stored profile the passes of AR are exact, the rest unknown, and the
text says how to measure one (`pardecode profile`, on the device the suite will run on).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ..core.cost import CostProfile
from .suite import Setting, Suite

AR_NAMES = ("ar",)


@attrs.frozen
class SettingCost:
    label: str
    runs: int
    images: int
    passes_per_image: float | None  # None: unknown without a profile
    seconds: float | None  # all runs, one process after another; None without a profile


@attrs.frozen
class BackboneCost:
    label: str
    name: str  # the registered backbone
    length: int  # image tokens per image (AR's passes)
    profile: str | None  # the stored profile's file, or None
    device: str | None
    settings: tuple[SettingCost, ...]

    @property
    def seconds(self) -> float | None:
        values = [s.seconds for s in self.settings]
        return None if any(v is None for v in values) else sum(values)


def _window(setting: Setting, profile: CostProfile, batch: int) -> int:
    """The setting's draft window; for "auto", the profile's cheapest window per token."""
    window = setting.params.get("window", getattr(setting.build(), "window", "auto"))
    if isinstance(window, int):
        return window
    return min(
        (w for w in profile.windows if w), key=lambda w: profile.pass_seconds(batch, w) / profile.tokens_per_pass(w)
    )


def setting_cost(setting: Setting, runs: int, batch: int, length: int, profile: CostProfile | None) -> SettingCost:
    ar = setting.strategy in AR_NAMES
    if profile is None:
        return SettingCost(setting.label, runs, runs * batch, float(length) if ar else None, None)
    window = 0 if ar else _window(setting, profile, batch)
    passes = length / profile.tokens_per_pass(window) if window else float(length)
    return SettingCost(setting.label, runs, runs * batch, passes, runs * passes * profile.pass_seconds(batch, window))


def estimate(suite: Suite) -> list[BackboneCost]:
    """What every backbone's runs cost, from this machine's stored cost profiles (torch threads as set)."""
    from ..planning import profile_key

    out = []
    runs = suite.runs()
    for spec in suite.backbones:
        backbone = spec.load()
        settings = [s for s in suite.settings if s.runs_on(spec.label)]
        costs, profile_path, device, length = [], None, None, 0
        for setting in settings:
            sampling = setting.sampling_for(backbone)
            length = backbone.start([suite.prompts[0]], sampling, **spec.start).layout.length
            key = profile_key(backbone, sampling, spec.start)
            profile = CostProfile.load(key)
            if profile is not None:
                profile_path, device = str(CostProfile.path_for(key)), key["device"]
            count = sum(1 for r in runs if r.backbone == spec.label and r.setting.label == setting.label)
            costs.append(setting_cost(setting, count, suite.batch, length, profile))
        out.append(BackboneCost(spec.label, spec.name, length, profile_path, device, tuple(costs)))
    return out


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds >= 360:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def render(suite: Suite, costs: Iterable[BackboneCost], shards: int = 1) -> str:
    """The dry run's text: per backbone and setting, runs, images, passes per image, device-hours."""
    lines = [
        f"suite {suite.name}: {len(suite.runs())} runs, {len(suite.prompts)} prompts"
        f"{f' ({suite.prompt_source})' if suite.prompt_source else ''} x {len(suite.seeds)} seed(s) "
        f"x {suite.repeats} repeat(s), batch {suite.batch}"
        + (f"; metrics {', '.join(m.name for m in suite.metrics)}" if suite.metrics else "")
    ]
    total: float | None = 0.0
    for cost in costs:
        where = (
            f"cost profile {cost.profile} ({cost.device})"
            if cost.profile
            else "no stored cost profile: "
            f"it would measure one first (`pardecode profile --backbone {cost.name} ...` with the suite's "
            "options and threads)"
        )
        lines.append(f"\n{cost.label}: {cost.length} image tokens per image; {where}")
        lines.append(f"  {'setting':<48} {'runs':>6} {'images':>7} {'passes/image':>13} {'device time':>13}")
        for s in cost.settings:
            passes = "?" if s.passes_per_image is None else f"{s.passes_per_image:.1f}"
            lines.append(f"  {s.label:<48} {s.runs:>6} {s.images:>7} {passes:>13} {_duration(s.seconds):>13}")
        total = None if total is None or cost.seconds is None else total + cost.seconds
    if total is None:
        lines.append("\nestimated device-hours: unknown until every backbone has a stored cost profile")
    else:
        lines.append(
            f"\nestimated device-hours: {total / 3600:.2f} ({_duration(total)}; decoding only: warm-ups, "
            f"image decoding and metrics add to it); wall time over {shards} process(es): "
            f"{_duration(total / shards)}"
        )
    lines.append(
        "passes of parallel settings use the profile's SJD calibration: lossy and tree strategies usually need fewer"
    )
    return "\n".join(lines)
