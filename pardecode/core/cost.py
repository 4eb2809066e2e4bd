"""What one pass costs on this machine: a measured profile of the backbone, kept on disk.

Parallel decoding pays off only when the tokens a pass commits outweigh what the wider pass costs,
and that trade depends on the model, the device, the dtype, the threads and the batch. A
`CostProfile` holds the median seconds of one loop pass (forward and framework together) by live
generation rows and draft window, measured by running the loop itself (`pardecode.planning`,
above the core: measuring runs decodes, so it happens before a decode, never inside one). It is
stored under `profile_dir()` keyed by what its figures depend on (`pardecode.planning.profile_key`).

A pass of placed slots (draft trees, several fronts) costs more than a single window scoring as
many positions (an explicit attention mask, more checks: about 10% on the default model), so a
profile may carry a second curve for that pass kind (`placed_seconds`), and the tokens per pass of
shaped settings (`shape_tokens`, e.g. the draft tree's candidate shapes). Profiles stored before
either existed load with neither: placed passes are then costed as single windows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError


def profile_dir() -> Path:
    """Where profiles live: $PARDECODE_CACHE/profiles, else ~/.cache/pardecode/profiles."""
    root = os.environ.get("PARDECODE_CACHE") or Path.home() / ".cache" / "pardecode"
    return Path(root) / "profiles"


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear through (xs, ys), extended linearly past both ends."""
    if len(xs) == 1:
        return ys[0] * max(x, 1) / max(xs[0], 1)  # one batch size measured: cost grows with rows
    i = 1
    while i < len(xs) - 1 and xs[i] < x:
        i += 1
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return max(y0 + (y1 - y0) * (x - x0) / (x1 - x0), 1e-9)


@attrs.frozen
class CostProfile:
    """Median seconds of one pass by live rows (`batches`) and window (`windows`), and the tokens
    each row commits per pass at every window (`tokens`, from whole calibration decodes: the prior
    of the window planner)."""

    key: dict[str, Any]
    batches: tuple[int, ...] = attrs.field(converter=tuple)
    windows: tuple[int, ...] = attrs.field(converter=tuple)
    seconds: tuple[tuple[float, ...], ...] = attrs.field(converter=lambda rows: tuple(map(tuple, rows)))
    tokens: tuple[float, ...] = attrs.field(converter=tuple, default=())
    #: the same calibration for other strategy settings, by label (e.g. "sjd_pac", "sjd:maximal");
    #: `tokens` is the reference SJD's, used for any setting without its own
    tokens_by: dict[str, tuple[float, ...]] = attrs.field(
        factory=dict, converter=lambda d: {k: tuple(v) for k, v in d.items()}
    )
    #: median seconds of a placed-slot pass scoring 1 + W positions, by batch and window W (as
    #: `seconds`); empty: unmeasured, costed as a single window of W drafts
    placed_seconds: tuple[tuple[float, ...], ...] = attrs.field(
        default=(), converter=lambda rows: tuple(map(tuple, rows))
    )
    #: tokens a row commits per pass with a shaped placed-slot setting, by shape key (e.g.
    #: "sjd_pac_tree:16x2x4", see `pardecode.planning.TREE_SHAPES`), from whole calibration decodes
    shape_tokens: dict[str, float] = attrs.field(factory=dict, converter=lambda d: {k: float(v) for k, v in d.items()})
    #: where the figures come from: "measured" on this machine, or "prior" (shipped with the
    #: backbone, or generic) with its seconds scaled by the passes decodes here have observed
    source: str = "measured"
    observed: int = 0  # passes of real decodes a prior's scale was fitted to

    @property
    def is_prior(self) -> bool:
        return self.source != "measured"

    def for_setting(self, label: str) -> CostProfile:
        """This profile with `label`'s calibration as its `tokens` (unchanged without one)."""
        return attrs.evolve(self, tokens=self.tokens_by[label]) if label in self.tokens_by else self

    def scaled(self, factor: float, passes: int) -> CostProfile:
        """This profile with every pass `factor` times as long, `passes` more passes observed."""
        seconds = [[t * factor for t in row] for row in self.seconds]
        placed = [[t * factor for t in row] for row in self.placed_seconds]
        return attrs.evolve(self, seconds=seconds, placed_seconds=placed, observed=self.observed + passes)

    def __attrs_post_init__(self):
        if list(self.batches) != sorted(set(self.batches)) or list(self.windows) != sorted(set(self.windows)):
            raise ConfigError("a cost profile's batches and windows must be increasing")
        if len(self.seconds) != len(self.batches) or any(len(r) != len(self.windows) for r in self.seconds):
            raise ConfigError("a cost profile needs one time per batch and window")
        placed = self.placed_seconds
        if placed and (len(placed) != len(self.batches) or any(len(r) != len(self.windows) for r in placed)):
            raise ConfigError("a cost profile's placed-pass times need one time per batch and window, or none")
        if any(len(t) != len(self.windows) for t in (self.tokens or self.windows, *self.tokens_by.values())):
            raise ConfigError("a cost profile needs tokens per pass for every window")

    def pass_seconds(self, rows: int, window: int) -> float:
        """Estimated seconds of one pass of `rows` live rows scoring `window` drafts each."""
        per_batch = [_interpolate(self.windows, row, window) for row in self.seconds]
        return _interpolate(self.batches, per_batch, rows)

    def placed_pass_seconds(self, rows: int, positions: int) -> float:
        """Estimated seconds of one placed-slot pass of `rows` live rows scoring `positions` slots each
        (a single window's seconds for as many positions where the profile has no placed curve)."""
        if not self.placed_seconds:
            return self.pass_seconds(rows, positions - 1)
        per_batch = [_interpolate(self.windows, row, positions - 1) for row in self.placed_seconds]
        return _interpolate(self.batches, per_batch, rows)

    def tokens_per_pass(self, window: int) -> float:
        """Tokens a row commits per pass at `window`, as the calibration decodes measured."""
        if not self.tokens:
            return 1.0 + 0.5 * min(window, 2)  # no calibration: assume little
        return _interpolate(self.windows, self.tokens, min(window, self.windows[-1]))

    def merged(self, other: CostProfile) -> CostProfile:
        """This profile with `other`'s batch sizes added (theirs win where both have one)."""
        if other.windows != self.windows or self.is_prior != other.is_prior:
            return other
        rows = dict(zip(self.batches, self.seconds)) | dict(zip(other.batches, other.seconds))
        placed = dict(zip(self.batches, self.placed_seconds)) | dict(zip(other.batches, other.placed_seconds))
        batches = sorted(rows)
        return attrs.evolve(
            self,
            batches=batches,
            seconds=[rows[b] for b in batches],
            # a placed curve for every batch, or none (placed passes then costed as single windows)
            placed_seconds=[placed[b] for b in batches] if set(placed) == set(rows) else (),
            tokens=other.tokens or self.tokens,
            tokens_by=self.tokens_by | other.tokens_by,
            shape_tokens=self.shape_tokens | other.shape_tokens,
        )

    # --- storage ------------------------------------------------------------------------------
    @staticmethod
    def path_for(key: dict[str, Any]) -> Path:
        name = "-".join(str(key[k]) for k in ("backbone", "model", "device", "dtype"))
        name += f"-t{key['threads']}-cfg{int(key['guidance'])}-v{key['pardecode']}"
        if key["start"] != "{}":  # non-default image sizes and other start options
            name += "-" + hashlib.sha1(key["start"].encode()).hexdigest()[:8]
        name += ".json"
        return profile_dir() / name.replace("/", "_").replace(":", "_")

    def save(self) -> Path:
        path = self.path_for(self.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(attrs.asdict(self), indent=1))
        tmp.replace(path)  # never a half-written profile, even when interrupted
        return path

    @classmethod
    def load(cls, key: dict[str, Any]) -> CostProfile | None:
        path = cls.path_for(key)
        try:
            data = json.loads(path.read_text())
            profile = cls(**data)
        except (OSError, ValueError, TypeError):
            return None  # missing or unreadable: measured again
        return profile if profile.key == key else None


def increasing_fit(values: Sequence[float]) -> list[float]:
    """The non-decreasing sequence closest to `values` in least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([v, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, n1), (m2, n2) = blocks.pop(-2), blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return [m for m, n in blocks for _ in range(n)]
