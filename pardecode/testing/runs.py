"""Decodes as certification runs them: a strategy watched so that refusing a reference is told
apart from failing on it, windows that change mid-decode, and forward passes counted twice (by the
loop and by the reference session)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import attrs
import torch

from ..core.config import SamplingConfig
from ..core.cost import CostProfile
from ..core.errors import ConfigError
from ..core.loop import decode
from ..core.options import options_of
from ..core.strategy import DecodeContext, Proposal, Strategy
from ..core.trace import DecodeResult
from ..planning import profile_key
from .references import Reference

#: a cost profile under which the window planner's best window moves with the acceptance it sees,
#: so automatic windows change within a decode (0 to 8 drafts; wider windows cost more per pass)
SWING_WINDOWS = (0, 1, 2, 4, 8)
SWING_SECONDS = (1.0, 1.2, 1.45, 2.0, 3.0)
SWING_TOKENS = (1.0, 1.9, 2.7, 3.4, 4.0)


class NotApplicable(Exception):
    """The strategy refused the reference or the setting before decoding (a ConfigError in `reset`)."""


class Watched(Strategy):
    """`inner`, delegated to, recording whether a decode got past `reset`: a ConfigError before that
    is the strategy refusing the run (zipar on a span with no grid), after it a failure. With a
    `schedule`, `inner.window` is set from it by pass number before every proposal."""

    def __init__(self, inner: Strategy, schedule: Sequence[int] | None = None):
        # a schedule rewrites the window: on a copy, so the caller's strategy keeps its own
        self.inner = copy.copy(inner) if schedule else inner
        self.schedule, self.started = tuple(schedule or ()), False
        self.name = inner.name  # type: ignore[misc]
        self.lossless = inner.lossless  # type: ignore[misc]
        self.approximation = inner.approximation  # type: ignore[misc]

    def reset(self, ctx: DecodeContext) -> None:
        self.started = False
        self.inner.reset(ctx)
        self.started = True

    def propose(self, ctx: DecodeContext) -> Proposal:
        if self.schedule:
            self.inner.window = self.schedule[ctx.step % len(self.schedule)]  # type: ignore[attr-defined]
        return self.inner.propose(ctx)

    def verify(self, ctx, proposal, p):
        return self.inner.verify(ctx, proposal, p)


def swinging_profile(reference: Reference, sampling: SamplingConfig) -> CostProfile:
    """A cost profile for `reference` under which automatic windows change mid-decode."""
    key = profile_key(reference.backbone, sampling)
    return CostProfile(key, (1,), SWING_WINDOWS, [SWING_SECONDS], SWING_TOKENS)


def takes_auto_window(strategy: Strategy) -> bool:
    """Whether the strategy's `window` option may be "auto" (declared `int | str`, or "auto" by default)."""
    if not attrs.has(type(strategy)):
        return False
    window = next((o for o in options_of(type(strategy))[0] if o.name == "window"), None)
    return window is not None and (window.default == "auto" or "str" in window.type)


def with_auto_window(strategy: Strategy) -> Strategy:
    return attrs.evolve(strategy, window="auto")


@attrs.frozen
class Run:
    """One decode and what certification reads off it."""

    result: DecodeResult
    calls: int  # forward calls the reference session counted

    @property
    def passes_match(self) -> bool:
        return self.calls == self.result.forward_passes

    @property
    def widths(self) -> set[int]:
        return set(self.result.trace.widths)


def run(
    reference: Reference,
    strategy: Strategy,
    prompts: Sequence[str],
    sampling: SamplingConfig,
    seed: int,
    schedule: Sequence[int] | None = None,
    profile: CostProfile | None = None,
) -> Run:
    """Decode `prompts` on the reference; NotApplicable if the strategy refuses it in `reset`.

    Automatic windows are sized by `profile`, by default `swinging_profile`: never this machine's
    measured one, so a certification gives the same result everywhere."""
    watched = Watched(strategy, schedule)
    profile = profile or swinging_profile(reference, sampling)
    try:
        result = decode(reference.backbone, watched, list(prompts), sampling=sampling, seed=seed, profile=profile)
    except ConfigError as err:
        if watched.started:
            raise
        raise NotApplicable(str(err)) from None
    return Run(result, result.session.calls)


def passes_per_token(result: DecodeResult) -> float:
    return result.forward_passes / result.tokens.shape[1]


def first_mismatch(tokens: torch.Tensor, expected: torch.Tensor) -> str:
    """'' when equal, else which rows differ and where the first difference is."""
    differ = (tokens != expected).any(1)
    if not bool(differ.any()):
        return ""
    row = int(differ.nonzero()[0])
    offset = int((tokens[row] != expected[row]).nonzero()[0])
    return f"{int(differ.sum())} of {len(differ)} rows differ; row {row} first at offset {offset}"
