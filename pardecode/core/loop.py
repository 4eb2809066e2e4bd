"""The decoding loop: propose -> score -> process -> verify -> commit, one forward pass per step.

The Decoder owns a decode's bookkeeping: per-row progress, the pass count, the trace and the
window planner. What differs between a window of drafts and slots placed anywhere in the span
(inputs, attention, what the cache keeps) lives in the two pass kinds of `core.passes`, which the
Decoder calls through one interface. Strategies only see distributions and return answers, and
the forward pass runs here, so no strategy can under-report its cost.

Everything a decode needs is resolved before it starts: the strategy object, the sampling
settings and, for a strategy that sizes its window automatically, the cost profile its planner
reads (`pardecode.planning` measures profiles; `pardecode.decode` resolves one).
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Sequence
from typing import Any

import torch

from .backbone import Backbone, Scores, Session, Window
from .config import SamplingConfig
from .cost import CostProfile
from .errors import BackboneError, ConfigError
from .passes import Committed, PassKind
from .passes.common import HOLE_FRACTION, allowed_lookup, check_proposal, compact_holes
from .passes.placed_slots import PlacedSlots
from .passes.single_window import SingleWindow
from .strategy import DecodeContext, Strategy
from .trace import DecodeResult, Trace
from .windows import Shape, WindowPlanner

__all__ = [
    "HOLE_FRACTION",
    "Decoder",
    "allowed_lookup",
    "check_proposal",
    "compact_holes",
    "decode",
]


class Decoder:
    """One decode of a batch: the state the loop carries from pass to pass.

    Per-row progress is mirrored in Python integers (one transfer per pass), so the per-pass
    decisions (which rows run, how wide a window may be) need no tensor round trip.
    """

    def __init__(
        self,
        backbone: Backbone,
        session: Session,
        strategy: Strategy,
        sampling: SamplingConfig,
        seed: int,
        profile: CostProfile | None = None,
    ):
        """`profile` sizes automatic windows; a strategy with an "auto" option needs one."""
        if profile is None and strategy.auto_sized():
            raise ConfigError(
                f"strategy {strategy.name!r} sizes its window automatically and needs a cost profile: pass "
                "profile= (pardecode.planning.profile_for measures one) or decode through pardecode.decode"
            )
        self.backbone, self.session, self.strategy, self.sampling = backbone, session, strategy, sampling
        batch, length = session.batch, session.layout.length
        device = torch.device(getattr(session, "device", "cpu"))
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        self.ctx = DecodeContext(
            batch=batch,
            vocab_size=backbone.vocab_size,
            length=length,
            sampling=sampling,
            generator=generator,
            device=device,
            allowed_at=allowed_lookup(session.layout, device),
            # room for a full window past any row's end: the commit scatters whole windows
            tokens=torch.zeros(batch, 2 * length + 1, dtype=torch.long, device=device),
            committed=torch.zeros(batch, dtype=torch.long, device=device),
            token_embeddings=backbone.token_embeddings if backbone.noise_ready() else None,
            backbone=backbone.name,
            longest_remaining=length,
            grid=session.layout.image_grid(),
            image_codebook=backbone.image_codebook,
            layout=session.layout,
        )
        self.planner = None if profile is None else WindowPlanner(profile)
        if self.planner is not None:
            self.ctx.planner = self._plan
            self.ctx.shape_planner = self._plan_shape
        self.remaining = [length] * batch  # per row, mirrored from ctx.committed
        self.kind: PassKind | None = None  # chosen by the first proposal: a single window or placed slots
        self.widths: list[int] = []
        self.counts: list[torch.Tensor] = []
        self.forward_seconds: list[float] = []
        self.step_seconds: list[float] = []
        self.diagnostics: list[dict[str, torch.Tensor]] = []

    def start(self) -> None:
        """Reset the strategy for this decode (`run` does it; call it before driving `step` by hand)."""
        self.strategy.reset(self.ctx)

    def step(self) -> None:
        """One pass: propose -> score -> process -> verify -> commit."""
        ctx, start = self.ctx, time.perf_counter()
        proposal = self.strategy.propose(ctx)
        kind = self._kind_for(proposal.offsets is not None)
        prepared = kind.prepare(proposal, None if min(self.remaining) > 0 else ctx.committed < ctx.length)
        scores = self._score(prepared.window)
        p = kind.targets(prepared, scores)
        answer = self.strategy.verify(ctx, proposal, p)
        committed = kind.commit(prepared, answer, self.remaining)
        self._record(committed, proposal.width, start)

    def _kind_for(self, placed: bool) -> PassKind:
        """The pass kind of this decode, fixed by its first proposal (placed slots stay placed)."""
        if self.kind is None:
            if placed:
                self.kind = PlacedSlots(self.ctx, self.session, self.strategy, self.backbone.name)
            else:
                self.kind = SingleWindow(self.ctx, self.session, self.strategy)
        elif placed and isinstance(self.kind, SingleWindow):
            self.kind = PlacedSlots(self.ctx, self.session, self.strategy, self.backbone.name)  # refuses: step > 0
        return self.kind

    def _score(self, window: Window) -> Scores:
        """Exactly one forward pass, counted and timed here."""
        t0 = time.perf_counter()
        scores = self.session.forward(window)
        self.forward_seconds.append(time.perf_counter() - t0)
        expected = (self.ctx.batch, window.tokens.shape[1] + window.first, self.ctx.vocab_size)
        if tuple(scores.cond.shape) != expected:
            raise BackboneError(
                f"backbone {self.backbone.name!r} returned logits {tuple(scores.cond.shape)}, expected {expected}"
            )
        if self.sampling.uses_cfg:
            self._check_guidance(scores.uncond, expected)
        return scores

    def _record(self, committed: Committed, width: int, start: float) -> None:
        """Per-row progress and the trace, after the pass kind applied the answer."""
        ctx = self.ctx
        self.widths.append(width)
        if self.planner is not None and self.planner.shaped_pass_pending:
            self.planner.update_shaped(committed.per_row, [r > 0 for r in self.remaining])
        elif self.planner is not None and committed.accepted is not None:
            self.planner.update(committed.accepted, width, [r > 0 for r in self.remaining])
        ctx.committed = ctx.committed + committed.tokens
        self.remaining = [r - t for r, t in zip(self.remaining, committed.per_row)]
        ctx.longest_remaining = max(self.remaining)
        ctx.step += 1
        self.counts.append(committed.tokens)
        self.diagnostics.append(committed.diagnostics)
        self.step_seconds.append(time.perf_counter() - start)

    def _plan(self, widest: int) -> int:
        """The window of this pass for a strategy that sizes it automatically (`window="auto"`)."""
        return self.planner.choose(sum(r > 0 for r in self.remaining), widest)

    def _plan_shape(self, shapes: Sequence[Shape]) -> Shape:
        """The shape of this pass for a placed-slot strategy that sizes it automatically."""
        return self.planner.choose_shape(sum(r > 0 for r in self.remaining), shapes)

    def _check_guidance(self, uncond: torch.Tensor | None, expected: tuple[int, ...]) -> None:
        """Guidance was asked for: refuse a session that returned no unconditional branch, or one of
        another shape (a [B, 1, V] branch would broadcast into a silently wrong guidance)."""
        name = self.backbone.name
        if uncond is None:
            raise BackboneError(
                f"backbone {name!r} returned no unconditional logits (Scores.uncond) although cfg_scale is "
                f"{self.sampling.cfg_scale}; its session must score the guidance branch, or use cfg_scale 1"
            )
        if tuple(uncond.shape) != expected:
            raise BackboneError(
                f"backbone {name!r} returned unconditional logits {tuple(uncond.shape)}, expected {expected}"
            )

    def _diagnostics(self) -> dict[str, torch.Tensor]:
        """Name -> Float[passes, B] of every diagnostic any verdict reported (0 where one did not)."""
        names = dict.fromkeys(k for d in self.diagnostics for k in d)
        zero = torch.zeros(self.ctx.batch)
        return {n: torch.stack([d[n].float().cpu() if n in d else zero for d in self.diagnostics]) for n in names}

    def run(self, max_passes: int | None = None) -> DecodeResult:
        self.start()
        limit = max_passes if max_passes is not None else self.ctx.length + 1
        while max(self.remaining) > 0:
            if self.ctx.step >= limit:
                raise BackboneError(f"decode did not finish within {limit} forward passes")
            self.step()
        trace = Trace(
            self.widths,
            torch.stack(self.counts).cpu(),
            self.forward_seconds,
            self.step_seconds,
            0.0,
            self._diagnostics(),
            placed=isinstance(self.kind, PlacedSlots),
        )
        return DecodeResult(self.ctx.tokens[:, : self.ctx.length].clone(), trace, self.session)


def check_seed(seed: Any) -> int:
    """`seed` as an int, refused in one line unless it is an integer in [0, 2**63)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """`prompts` as a list, refused in one line unless it is a non-empty sequence of strings."""
    if isinstance(prompts, str) or not len(prompts):
        raise ConfigError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    return list(prompts)


def decode(
    backbone: Backbone,
    strategy: Strategy,
    prompts: Sequence[str],
    *,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    profile: CostProfile | None = None,
    **start_options: Any,
) -> DecodeResult:
    """Decode one batch of `prompts` with a `strategy` object, everything resolved by the caller.

    `sampling` defaults to the backbone's reference settings; `start_options` go to
    `backbone.start` (image size, ...); `profile` is the cost profile automatic windows are chosen
    with. `pardecode.decode` is the same with names resolved and the profile found or measured.
    """
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"strategy must be a pardecode.Strategy, got {type(strategy).__name__}")
    seed, prompts = check_seed(seed), check_prompts(prompts)
    sampling = sampling or backbone.default_sampling
    session = backbone.start(prompts, sampling, **start_options)
    return Decoder(backbone, session, strategy, sampling, seed, profile).run()
