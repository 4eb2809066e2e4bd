"""What one pass costs on this machine: a measured profile of the backbone, kept on disk.

Parallel decoding pays off only when the tokens a pass commits outweigh what the wider pass costs,
and that trade depends on the model, the device, the dtype, the threads and the batch. A
`CostProfile` holds the median seconds of one loop pass (forward and framework together) by live
generation rows and draft window, measured by running the loop itself. It is stored under
`profile_dir()` keyed by backbone, device, dtype, threads and pardecode version; decodes that choose
their window automatically load it, or measure the rows they need on the fly and add them.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from .backbone import Backbone
from .config import SamplingConfig
from .errors import ConfigError
from .strategy import Proposal, Strategy, Verdict

#: windows measured by default: AR (0) and powers of two up to the widest auto window
WINDOWS = (0, 1, 2, 4, 8, 16, 32, 64)
WARMUP_PASSES = 2  # the pass that skips to mid-span and one more are not timed
TIMED_PASSES = 5
CALIBRATION_ROWS = 2  # rows of each calibration decode, at least
CALIBRATION = 2  # revision of how tokens per pass are calibrated: profiles of another are measured again
UNSHAPED_CONFIG_KEYS = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures", "_commit_hash"}
PROMPT = "a photo"  # any prompt will do: cost does not depend on content


def profile_dir() -> Path:
    """Where profiles live: $PARDECODE_CACHE/profiles, else ~/.cache/pardecode/profiles."""
    root = os.environ.get("PARDECODE_CACHE") or Path.home() / ".cache" / "pardecode"
    return Path(root) / "profiles"


def profile_key(backbone: Backbone, sampling: SamplingConfig, start_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a profile's figures depend on."""
    from .. import __version__

    body = getattr(backbone, "body", None)
    config = getattr(body, "config", None)
    model = ""
    if config is not None:  # the architecture, not where it was loaded from or saved by
        shape = {k: v for k, v in config.to_dict().items() if k not in UNSHAPED_CONFIG_KEYS}
        model = hashlib.sha1(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:10]
    first = next(body.parameters()) if body is not None else None
    return {
        "backbone": backbone.name,
        "model": model,
        "device": str(first.device) if first is not None else "cpu",
        "dtype": str(first.dtype).removeprefix("torch.") if first is not None else "float32",
        "threads": torch.get_num_threads(),
        "guidance": sampling.uses_cfg,
        "start": json.dumps(start_options or {}, sort_keys=True, default=str),
        "pardecode": __version__,
        "calibration": CALIBRATION,
    }


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

    def __attrs_post_init__(self):
        if list(self.batches) != sorted(set(self.batches)) or list(self.windows) != sorted(set(self.windows)):
            raise ConfigError("a cost profile's batches and windows must be increasing")
        if len(self.seconds) != len(self.batches) or any(len(r) != len(self.windows) for r in self.seconds):
            raise ConfigError("a cost profile needs one time per batch and window")
        if self.tokens and len(self.tokens) != len(self.windows):
            raise ConfigError("a cost profile needs tokens per pass for every window")

    def pass_seconds(self, rows: int, window: int) -> float:
        """Estimated seconds of one pass of `rows` live rows scoring `window` drafts each."""
        per_batch = [_interpolate(self.windows, row, window) for row in self.seconds]
        return _interpolate(self.batches, per_batch, rows)

    def tokens_per_pass(self, window: int) -> float:
        """Tokens a row commits per pass at `window`, as the calibration decodes measured."""
        if not self.tokens:
            return 1.0 + 0.5 * min(window, 2)  # no calibration: assume little
        return _interpolate(self.windows, self.tokens, min(window, self.windows[-1]))

    def merged(self, other: CostProfile) -> CostProfile:
        """This profile with `other`'s batch sizes added (theirs win where both have one)."""
        if other.windows != self.windows:
            return other
        rows = dict(zip(self.batches, self.seconds)) | dict(zip(other.batches, other.seconds))
        batches = sorted(rows)
        return attrs.evolve(self, batches=batches, seconds=[rows[b] for b in batches],
                            tokens=other.tokens or self.tokens)

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


class SkipAhead(Strategy):
    """Timing aid, never a decoding strategy: one pass that keeps half the span unverified, so the
    passes timed after it attend to a cache as long as a decode's average."""

    name = "skip-ahead"

    def propose(self, ctx):
        width = ctx.useful_width(ctx.length // 2)
        return Proposal(torch.zeros(ctx.batch, width, dtype=torch.long, device=ctx.device))

    def verify(self, ctx, proposal, p):
        return Verdict(torch.full((ctx.batch,), proposal.width, device=ctx.device), p[:, -1].argmax(-1))


def measure(
    backbone: Backbone,
    batches: Sequence[int],
    *,
    sampling: SamplingConfig | None = None,
    windows: Sequence[int] = WINDOWS,
    rounds: int = 3,
    prompt: str | None = None,
    start_options: dict[str, Any] | None = None,
    calibrate_tokens: bool = True,
) -> CostProfile:
    """Time the loop on `backbone`: `rounds` interleaved runs of every (batch, window) setting.

    `start_options` (image size, ...) go to `backbone.start`: a pass's cost depends on them.
    `prompt` defaults to one the backbone accepts (`Backbone.example_prompt`). Without
    `calibrate_tokens` the whole calibration decodes are skipped (the profile then has no `tokens`:
    for adding batch sizes to a profile that has them, see `with_stored`).
    """
    start_options = start_options or {}
    prompt_given = prompt
    prompt = prompt or getattr(backbone, "example_prompt", PROMPT)
    from .loop import Decoder
    from .plugins import plugins

    sampling = sampling or backbone.default_sampling
    draw = sampling if not sampling.greedy else attrs.evolve(sampling, temperature=1.0)
    registry = plugins().strategies
    times: dict[tuple[int, int], list[float]] = {(b, w): [] for b in batches for w in windows}
    for r in range(rounds):
        for b in batches:
            for w in windows:
                session = backbone.start([prompt] * b, draw, **start_options)
                decoder = Decoder(backbone, session, SkipAhead(), draw, seed=r)
                decoder.step()  # to mid-span: a pass's cost grows with the cache it attends to
                strategy = registry.get("sjd").factory(window=w) if w else registry.get("ar").factory()
                decoder.strategy = strategy
                strategy.reset(decoder.ctx)
                while decoder.ctx.step < WARMUP_PASSES + TIMED_PASSES and max(decoder.remaining) > 0:
                    decoder.step()
                times[b, w] += decoder.step_seconds[WARMUP_PASSES:] or decoder.step_seconds[-1:]  # short spans
    # a wider window never costs less: the closest non-decreasing curve irons out timing noise
    seconds = [increasing_fit([statistics.median(times[b, w]) for w in windows]) for b in batches]
    # whole decodes at every window: tokens per pass as a decode sees them, warm-up and all
    rows = calibration_rows(backbone, prompt_given)
    tokens = [1.0] + [calibrate(backbone, registry.get("sjd").factory(window=w), rows, draw, start_options)
                      for w in windows if w] if calibrate_tokens else []
    key = profile_key(backbone, draw, start_options)
    return CostProfile(key, sorted(batches), list(windows), seconds, tokens[: len(windows)])


def calibration_rows(backbone: Backbone, prompt: str | None = None) -> list[str]:
    """The prompts of the calibration decodes, one per row: `prompt` (if given) or the backbone's
    `calibration_prompts`, else its example prompt; at least `CALIBRATION_ROWS` rows.

    Acceptance varies with the prompt (on the default model sjd w16 commits 2.4 tokens per pass
    for "a sneaker" and 2.9 over its ten classes), so a profile calibrated on one prompt can keep
    a planner at AR where drafting pays."""
    prompts = [prompt] if prompt else list(getattr(backbone, "calibration_prompts", ()) or ())
    prompts = prompts or [getattr(backbone, "example_prompt", PROMPT)]
    return (prompts * CALIBRATION_ROWS)[: max(CALIBRATION_ROWS, len(prompts))]


def calibrate(backbone: Backbone, strategy: Any, prompts: list[str], sampling: SamplingConfig, start_options: dict) -> float:
    """Mean tokens a row commits per pass over one whole decode of `prompts` (a row each)."""
    from .loop import decode

    committed = decode(backbone, strategy, prompts, sampling=sampling, **start_options).trace.committed
    return float(committed[committed > 0].float().mean())


def profile_for(
    backbone: Backbone, sampling: SamplingConfig, rows: int, start_options: dict[str, Any] | None = None
) -> CostProfile:
    """The stored profile of `backbone` covering `rows` live rows (1 and `rows` measured if missing)."""
    key = profile_key(backbone, sampling, start_options)
    stored = CostProfile.load(key)
    if stored is not None and rows in stored.batches and 1 in stored.batches:
        return stored
    wanted = sorted({1, rows} - set(stored.batches if stored else ()))
    calibrated = stored is not None and bool(stored.tokens) and stored.windows == WINDOWS
    profile = with_stored(measure(backbone, wanted, sampling=sampling, start_options=start_options,
                                  calibrate_tokens=not calibrated))
    try:
        profile.save()
    except OSError:
        pass  # a read-only cache still decodes, it just measures again next time
    return profile


def with_stored(fresh: CostProfile) -> CostProfile:
    """`fresh` merged into the stored profile of the same key, if there is one."""
    stored = CostProfile.load(fresh.key)
    return stored.merged(fresh) if stored is not None else fresh
