"""Cost profiles measured on this machine, resolved before a decode starts.

A `CostProfile` (`pardecode.core.cost`) says what one pass costs by live rows and window, and how
many tokens a row commits per pass at each window. Measuring one runs the loop itself (timed
passes, then whole calibration decodes), so it lives here, above the core, and runs before the
decode that needs it, never inside one: `pardecode.decode` calls `profile_for` for a strategy
that sizes its window automatically and hands the profile to the loop.

Placed-slot passes (the draft tree) are timed beside single windows, by scored positions
(`PlacedSkipAheadThen`, `PlacedAR`), and the automatic tree's candidate shapes calibrated like the
other settings (`TREE_SHAPES`, stored in `CostProfile.shape_tokens`).

A first run does not wait for a measurement: without a stored profile a decode starts from a prior
(shipped with the backbone, `Backbone.cost_prior`, or generic) whose seconds each decode rescales
to this machine (`refine`); `pardecode profile` measures the full profile.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from .core.backbone import Backbone
from .core.config import SamplingConfig
from .core.cost import CostProfile, increasing_fit
from .core.errors import ConfigError
from .core.fronts import Commits
from .core.loop import Decoder, decode
from .core.plugins import plugins
from .core.strategy import DecodeContext, Proposal, Strategy, Verdict
from .core.trace import Trace
from .core.windows import Shape
from .strategies.sjd_pac_tree import TREE_SHAPES, shape_key
from .version import __version__

#: windows measured by default: AR (0) and powers of two up to the widest auto window
WINDOWS = (0, 1, 2, 4, 8, 16, 32, 64)
WARMUP_PASSES = 2  # the pass that skips to mid-span and one more are not timed
TIMED_PASSES = 5
CALIBRATION_ROWS = 2  # rows of each calibration decode, at least
CALIBRATION = 3  # revision of how tokens per pass are calibrated: profiles of another are measured again
UNSHAPED_CONFIG_KEYS = {
    "_name_or_path",
    "transformers_version",
    "dtype",
    "torch_dtype",
    "architectures",
    "_commit_hash",
}
PROMPT = "a photo"  # any prompt will do: cost does not depend on content
#: the exact settings a decode without a named strategy chooses among (label -> name, options), each
#: with an automatic window; their calibrations are measured beside the reference SJD's (the
#: automatic draft tree is weighed too, by its calibrated shapes: see `fastest_exact`)
EXACT_SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "sjd_pac": ("sjd_pac", {}),
    "sjd:maximal": ("sjd", {"coupling": "maximal"}),
    "sjd:gumbel": ("sjd", {"coupling": "gumbel"}),
}
#: what a profile may calibrate besides the reference SJD: the exact settings, and "tree" (the
#: automatic draft tree's candidate shapes)
CALIBRATED = (*EXACT_SETTINGS, "tree")


def profile_key(
    backbone: Backbone, sampling: SamplingConfig, start_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a profile's figures depend on; a backbone running the static pass (`HFBackbone`'s
    `static`) adds `"pass": "static"` (or "static compiled"), since its passes cost differently (the
    eager pass's key is unchanged)."""
    body = getattr(backbone, "body", None)
    config = getattr(body, "config", None)
    model = ""
    if config is not None:  # the architecture, not where it was loaded from or saved by
        shape = {k: v for k, v in config.to_dict().items() if k not in UNSHAPED_CONFIG_KEYS}
        model = hashlib.sha1(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:10]
    first = next(body.parameters()) if body is not None else None
    mode = {}
    if getattr(backbone, "static", False) is True:
        compiled = hasattr(body, "_pardecode_eager_forward")  # set by HFBackbone.compile
        mode = {"pass": "static compiled" if compiled else "static"}
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
        **mode,
    }


class SkipAheadThen(Strategy):
    """Timing aid, never a decoding strategy: a first pass that keeps half the span unverified, so
    the passes timed after it (by `timed`) attend to a cache as long as a decode's average."""

    name = "skip-ahead"

    def __init__(self, timed: Strategy):
        self.timed = timed

    def reset(self, ctx: DecodeContext) -> None:
        self.timed.reset(ctx)

    def propose(self, ctx: DecodeContext) -> Proposal:
        if ctx.step:
            return self.timed.propose(ctx)
        width = ctx.useful_width(ctx.length // 2)
        return Proposal(torch.zeros(ctx.batch, width, dtype=torch.long, device=ctx.device))

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict:
        if ctx.step:
            return self.timed.verify(ctx, proposal, p)
        return Verdict(torch.full((ctx.batch,), proposal.width, device=ctx.device), p[:, -1].argmax(-1))


class PlacedSkipAheadThen(SkipAheadThen):
    """`SkipAheadThen` on placed slots: the first pass places and commits half the span (allowed
    tokens, each from the slot before it), so the placed passes timed after it see a mid-span cache."""

    name = "placed-skip-ahead"

    def propose(self, ctx: DecodeContext) -> Proposal:
        if ctx.step:
            return self.timed.propose(ctx)
        width = ctx.useful_width(ctx.length // 2)
        allowed = ctx.allowed(width)
        tokens = torch.zeros(ctx.batch, width, dtype=torch.long, device=ctx.device)
        if allowed is not None:
            tokens = allowed.float().argmax(-1)
        offsets = torch.arange(width, device=ctx.device).expand(ctx.batch, -1).contiguous()
        return Proposal(tokens, offsets=offsets)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict | Commits:
        if ctx.step:
            return self.timed.verify(ctx, proposal, p)
        return Commits(proposal.offsets, proposal.tokens, proposal.offsets)  # offset j from slot j - 1's p


class PlacedAR(Strategy):
    """Timing aid: AR on placed slots (the pending token fed, the next one sampled), a placed pass
    of one position."""

    name = "placed-ar"

    def propose(self, ctx: DecodeContext) -> Proposal:
        last = (ctx.committed - 1).clamp(min=0).unsqueeze(1)
        return Proposal(ctx.tokens.gather(1, last), offsets=last)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Commits:
        offsets = ctx.committed.unsqueeze(1)
        tokens = p[:, 1].argmax(-1, keepdim=True)
        return Commits(torch.where(offsets < ctx.length, offsets, -1), tokens, torch.ones_like(tokens))


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
    settings: Sequence[str] | None = None,
) -> CostProfile:
    """Time the loop on `backbone`: `rounds` interleaved runs of every (batch, window) setting.

    `start_options` (image size, ...) go to `backbone.start`: a pass's cost depends on them.
    `prompt` defaults to one the backbone accepts (`Backbone.example_prompt`). Tokens per pass are
    calibrated for the reference SJD and for `settings` (labels of `EXACT_SETTINGS`, and "tree" for
    the automatic draft tree's shapes; None: all of them; each costs whole decodes at every window,
    and a setting left out is ranked by the reference SJD's calibration). Without
    `calibrate_tokens` the whole calibration decodes are skipped (the profile then has no `tokens`:
    for adding batch sizes to a profile that has them, see `with_stored`).
    """
    settings = list(CALIBRATED) if settings is None else list(settings)
    unknown = sorted(set(settings) - set(CALIBRATED))
    if unknown:
        raise ConfigError(f"unknown calibration setting(s) {unknown}; allowed: {', '.join(CALIBRATED)}")
    start_options = start_options or {}
    prompt_given = prompt
    prompt = prompt or getattr(backbone, "example_prompt", PROMPT)
    sampling = sampling or backbone.default_sampling
    draw = sampling if not sampling.greedy else attrs.evolve(sampling, temperature=1.0)
    registry = plugins().strategies
    # a window of drafts, and (where the backbone scores them) placed slots of as many positions
    kinds = (False, True) if scores_placed_slots(backbone, draw, start_options, prompt) else (False,)
    times: dict[tuple[int, int, bool], list[float]] = {(b, w, k): [] for b in batches for w in windows for k in kinds}
    for r in range(rounds):
        for b in batches:
            for w in windows:
                for placed in kinds:
                    session = backbone.start([prompt] * b, draw, **start_options)
                    decoder = Decoder(backbone, session, _timing(registry, w, placed), draw, seed=r)
                    decoder.start()  # the first pass skips to mid-span: a pass's cost grows with the cache
                    while decoder.ctx.step < WARMUP_PASSES + TIMED_PASSES and max(decoder.remaining) > 0:
                        decoder.step()
                    times[b, w, placed] += decoder.step_seconds[WARMUP_PASSES:] or decoder.step_seconds[-1:]
    # a wider window never costs less: the closest non-decreasing curve irons out timing noise
    seconds, placed_seconds = (
        [increasing_fit([statistics.median(times[b, w, placed]) for w in windows]) for b in batches]
        if placed in kinds
        else []
        for placed in (False, True)
    )
    # whole decodes at every window: tokens per pass as a decode sees them, warm-up and all
    rows = calibration_rows(backbone, prompt_given)
    tokens, tokens_by, shape_tokens = [], {}, {}
    if calibrate_tokens:
        chosen = {label: setting for label, setting in EXACT_SETTINGS.items() if label in settings}
        for label, (name, options) in {"sjd": ("sjd", {}), **chosen}.items():
            curve = [1.0] + [
                calibrate(backbone, registry.get(name).factory(**{**options, "window": w}), rows, draw, start_options)
                for w in windows
                if w
            ]
            tokens_by[label] = curve[: len(windows)]
        tokens = tokens_by.pop("sjd")
        if True in kinds and "tree" in settings:  # the automatic draft tree's candidate shapes
            tree = registry.get("sjd_pac_tree").factory
            shape_tokens = {
                shape_key(w, b, d): calibrate(backbone, tree(window=w, branches=b, depth=d), rows, draw, start_options)
                for w, b, d in TREE_SHAPES
            }
    key = profile_key(backbone, draw, start_options)
    return CostProfile(
        key,
        sorted(batches),
        list(windows),
        seconds,
        tokens,
        tokens_by,
        placed_seconds=placed_seconds,
        shape_tokens=shape_tokens,
    )


def _timing(registry: Any, window: int, placed: bool) -> Strategy:
    """What a pass of `window` drafts is timed with: sjd (AR at 0) after a skip to mid-span, or on
    placed slots a tree without siblings scoring 1 + `window` positions (`PlacedAR` at 0)."""
    if placed:
        return PlacedSkipAheadThen(
            registry.get("sjd_pac_tree").factory(window=window, branches=1, depth=0) if window else PlacedAR()
        )
    return SkipAheadThen(registry.get("sjd").factory(window=window) if window else registry.get("ar").factory())


def scores_placed_slots(
    backbone: Backbone, sampling: SamplingConfig, start_options: dict[str, Any] | None, prompt: str | None = None
) -> bool:
    """Whether `backbone`'s sessions score placed slots (their passes are then timed too)."""
    prompt = prompt or getattr(backbone, "example_prompt", PROMPT)
    return bool(getattr(backbone.start([prompt], sampling, **(start_options or {})), "supports_attention", False))


def calibration_rows(backbone: Backbone, prompt: str | None = None) -> list[str]:
    """The prompts of the calibration decodes, one per row: `prompt` (if given) or the backbone's
    `calibration_prompts`, else its example prompt; at least `CALIBRATION_ROWS` rows.

    Acceptance varies with the prompt (on the default model sjd w16 commits 2.4 tokens per pass
    for "a sneaker" and 2.9 over its ten classes), so a profile calibrated on one prompt can keep
    a planner at AR where drafting pays."""
    prompts = [prompt] if prompt else list(getattr(backbone, "calibration_prompts", ()) or ())
    prompts = prompts or [getattr(backbone, "example_prompt", PROMPT)]
    return (prompts * CALIBRATION_ROWS)[: max(CALIBRATION_ROWS, len(prompts))]


def calibrate(
    backbone: Backbone, strategy: Any, prompts: list[str], sampling: SamplingConfig, start_options: dict
) -> float:
    """Mean tokens a row commits per pass over one whole decode of `prompts` (a row each)."""
    committed = decode(backbone, strategy, prompts, sampling=sampling, **start_options).trace.committed
    return float(committed[committed > 0].float().mean())


#: a generic prior for backbones that ship none: seconds (arbitrary units, rescaled by the first
#: decode) growing mildly with the window, and modest tokens per pass (the planner's online
#: correction rescales them by what the decode's passes really commit)
GENERIC_PRIOR = CostProfile(
    key={},
    batches=(1, 8),
    windows=WINDOWS,
    seconds=[[1.0 + w / 32 for w in WINDOWS], [4.0 * (1.0 + w / 16) for w in WINDOWS]],
    tokens=(1.0, 1.3, 1.6, 2.0, 2.4, 2.7, 2.9, 3.0),
    source="prior",
)


def profile_for(
    backbone: Backbone,
    sampling: SamplingConfig,
    rows: int,
    start_options: dict[str, Any] | None = None,
    *,
    measure_missing: bool = False,
) -> CostProfile:
    """This machine's cost profile of `backbone`, found without measuring unless asked.

    The stored profile if there is one; else the backbone's shipped prior (`Backbone.cost_prior`)
    or `GENERIC_PRIOR`, keyed to this machine, which the decodes using it rescale (`refine`) and
    store. With `measure_missing`, a profile measured here covering 1 and `rows` live rows instead
    (measured now where missing, priors replaced): what `pardecode profile` and the speed bench use.
    """
    key = profile_key(backbone, sampling, start_options)
    stored = CostProfile.load(key)
    if not measure_missing:
        if stored is not None:
            return stored
        prior = backbone.cost_prior() or GENERIC_PRIOR
        return attrs.evolve(prior, key=key, source="prior", observed=0)
    if stored is not None and stored.is_prior:
        stored = None  # a measurement replaces a prior whole
    if stored is not None and not stored.placed_seconds and scores_placed_slots(backbone, sampling, start_options):
        stored = None  # measured before placed passes were timed and tree shapes calibrated: measured again whole
    if stored is not None and rows in stored.batches and 1 in stored.batches:
        return stored
    wanted = sorted({1, rows} - set(stored.batches if stored else ()))
    calibrated = stored is not None and bool(stored.tokens) and stored.windows == WINDOWS
    fresh = measure(backbone, wanted, sampling=sampling, start_options=start_options, calibrate_tokens=not calibrated)
    profile = stored.merged(fresh) if stored is not None else fresh
    _store(profile)
    return profile


def refine(profile: CostProfile, trace: Trace) -> CostProfile:
    """A prior's seconds rescaled by what `trace`'s passes took here, and stored; a measured
    profile is returned as it is.

    The scale is the median ratio of each pass's seconds to the prior's estimate for its window
    and live rows (the first pass, which also reads the prompt, excluded), blended with the
    passes observed before in proportion to their counts. Only the decodes after this one see
    it: a decode's windows never depend on its own timings.
    """
    if not profile.is_prior or trace.forward_passes < 2:
        return profile
    live = (trace.committed > 0).sum(1).tolist()
    cost = profile.placed_pass_seconds if trace.placed else profile.pass_seconds  # placed widths count positions
    ratios = [
        seconds / cost(rows, width) for seconds, rows, width in zip(trace.step_seconds[1:], live[1:], trace.widths[1:])
    ]
    passes = len(ratios)
    factor = statistics.median(ratios) ** (passes / (profile.observed + passes))
    refined = profile.scaled(factor, passes)
    _store(refined)
    return refined


def _store(profile: CostProfile) -> None:
    try:
        profile.save()
    except OSError:
        pass  # a read-only cache still decodes, it just starts from the prior or measures again


def with_stored(fresh: CostProfile) -> CostProfile:
    """`fresh` merged into the stored profile of the same key, if there is one."""
    stored = CostProfile.load(fresh.key)
    return stored.merged(fresh) if stored is not None else fresh


def setting_label(strategy: Strategy) -> str:
    """The calibration label of `strategy`: its name, with its coupling where that is not the
    strategy's default (the couplings commit different numbers of tokens per pass)."""
    coupling = getattr(strategy, "coupling", None)
    field = attrs.fields_dict(type(strategy)).get("coupling") if attrs.has(type(strategy)) else None
    if coupling is None or field is None or coupling == field.default:
        return strategy.name
    return f"{strategy.name}:{coupling}"


@attrs.frozen
class Choice:
    """The exact setting a decode without a named strategy runs, and why (`fastest_exact`)."""

    label: str
    strategy: Strategy
    window: int  # the window the profile predicts best for this batch (the decode still sizes each pass)
    speedup: float  # predicted tokens per second against AR's, by the profile
    source: str  # the profile's: "measured" or a prior

    def describe(self) -> str:
        kind = "measured" if self.source == "measured" else "prior"
        setting = f"{self.label} (window auto)" if self.window else "ar"
        return (
            f"{setting}, the fastest exact setting for this batch by this machine's cost profile ({kind}: "
            f"about {self.speedup:.2f}x AR's tokens per second)"
        )


def _best_tree_shape(profile: CostProfile, rows: int) -> tuple[float, Shape] | None:
    """(tokens per second, shape) of the automatic tree's best calibrated shape, None without any."""
    tree = plugins().strategies.get("sjd_pac_tree").factory(window="auto")
    rates = [
        (profile.shape_tokens[s.key] / profile.placed_pass_seconds(rows, s.positions), s)
        for s in tree.candidate_shapes()
        if s.key in profile.shape_tokens
    ]
    return max(rates, key=lambda r: r[0]) if rates else None


def fastest_exact(profile: CostProfile, rows: int) -> Choice:
    """The exact setting with the most expected tokens per second at `rows` live rows: AR, or a
    setting of `EXACT_SETTINGS` at its best window, or the automatic draft tree at its best shape
    (AR unless one is predicted faster).

    A setting without its own calibration in the profile is ranked by the reference SJD's, so
    with a profile calibrated for none the first setting listed (sjd_pac) is the one weighed. The
    tree is weighed only where the profile calibrates its shapes (`shape_tokens`: measured
    profiles, and priors that ship them), costed as placed passes; a decode never calibrates it.
    """
    ar_rate = 1.0 / profile.pass_seconds(rows, 0)
    best = (ar_rate, 0, "ar", "ar", {})
    for label, (name, options) in EXACT_SETTINGS.items():
        curve = profile.for_setting(label)
        rate, window = max((curve.tokens_per_pass(w) / profile.pass_seconds(rows, w), w) for w in profile.windows if w)
        if rate > best[0]:
            best = (rate, window, label, name, options)
    tree = _best_tree_shape(profile, rows)
    if tree is not None and tree[0] > best[0]:
        best = (tree[0], tree[1].window, "sjd_pac_tree", "sjd_pac_tree", {})
    rate, window, label, name, options = best
    factory = plugins().strategies.get(name).factory
    strategy = factory(**options, window="auto") if window else factory()
    return Choice(label, strategy, window, rate / ar_rate, profile.source)
