"""The decoding loop: propose -> score -> process -> verify -> commit, one forward pass per step.

The loop owns the generated span's cache bookkeeping and counts forward passes; strategies only
see distributions and return verdicts. Rows of a batch advance by their own accepted lengths (not
the batch minimum): a row that accepted fewer tokens leaves invalid slots ("holes") in the shared
cache, masked out of every later pass. Holes would otherwise pile up (a batch of 4 left the cache
twice as long as its rows), so once they exceed a quarter of the span cache the loop has the
session compact it. Capping a row's acceptance at its remaining length only stops verification
early, which keeps the output distribution exact.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .backbone import Backbone, NoisyInputs, Session, Window
from .config import SamplingConfig
from .cost import CostProfile, profile_for
from .errors import BackboneError, ConfigError
from .fronts import Fronts
from .layout import TokenLayout
from .sampling import target_probs
from .strategy import DecodeContext, Proposal, Strategy
from .trace import DecodeResult, Trace
from .windows import WindowPlanner

HOLE_FRACTION = 0.25  # compact the span cache once holes exceed this fraction of its slots


def check_proposal(proposal: Proposal, batch: int, vocab: int, strategy: Strategy) -> None:
    tokens = proposal.tokens
    if tokens.dim() != 2 or tokens.shape[0] != batch or tokens.dtype != torch.long:
        raise ConfigError(f"strategy {strategy.name!r} proposed {tuple(tokens.shape)} {tokens.dtype}; expected Long[{batch}, W]")
    if tokens.numel():
        low, high = torch.stack(torch.aminmax(tokens)).tolist()
        if low < 0 or high >= vocab:
            raise ConfigError(f"strategy {strategy.name!r} proposed token ids outside [0, {vocab})")


def allowed_lookup(layout: TokenLayout, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """The layout's allowed-token masks, computed once per decode for every span offset.

    Each pass then indexes a table instead of rebuilding masks. Offsets past the span's end (drafts
    of rows near their end, never committed) share the mask of the first offset past it. A layout
    that allows no token somewhere is refused here, once, instead of at every pass.
    """
    table = layout.allowed(torch.arange(layout.length + 1, device=device))
    if table is None:
        return lambda offsets: None
    if not bool(table.any(-1).all()):
        raise BackboneError("the layout allows no token at some position; check the adapter's layout")
    last = layout.length
    return lambda offsets: table[offsets.clamp(max=last)]


def compact_holes(
    session: Session, valid: torch.Tensor, counts: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Have `session` drop the holes of its span cache once they exceed `HOLE_FRACTION` of its slots.

    `valid` is Bool[B, S] (which cached span slots each row may see), `counts` its per-row sums.
    Returns (order Long[B, S']: row b's new slot j was its slot order[b, j], the new `valid`), or
    None when nothing moved (few holes, or a session that cannot compact).
    """
    slots, longest = valid.shape[1], max(counts)
    if slots - longest <= HOLE_FRACTION * slots:
        return None
    order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices[:, :longest]
    if not session.compact(order):
        return None
    per_row = torch.tensor(list(counts), device=valid.device)
    return order, torch.arange(longest, device=valid.device) < per_row.unsqueeze(1)


class Decoder:
    """One decode of a batch: the state the loop carries from pass to pass.

    Per-row progress is mirrored in Python integers (one transfer per pass), so the per-pass
    decisions (which rows run, how wide a window may be, when to compact) need no tensor round trip.
    """

    def __init__(
        self, backbone: Backbone, session: Session, strategy: Strategy, sampling: SamplingConfig, seed: int,
        profile: CostProfile | None = None, start_options: dict[str, Any] | None = None,
    ):
        """`profile` sizes automatic windows (default: the stored one for the session's
        `start_options`, measured if missing)."""
        self.start_options = start_options or {}
        self.backbone, self.session, self.strategy, self.sampling = backbone, session, strategy, sampling
        self.layout = session.layout
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
            allowed_at=allowed_lookup(self.layout, device),
            # room for a full window past any row's end: the commit scatters whole windows
            tokens=torch.zeros(batch, 2 * length + 1, dtype=torch.long, device=device),
            committed=torch.zeros(batch, dtype=torch.long, device=device),
            token_embeddings=backbone.token_embeddings if backbone.noise_ready() else None,
            backbone=backbone.name,
            longest_remaining=length,
            grid=self.layout.image_grid(),
            image_codebook=backbone.image_codebook,
            layout=self.layout,
        )
        self.ctx.planner = self._plan
        self._planner: WindowPlanner | None = None if profile is None else WindowPlanner(profile)
        self.setup_seconds = 0.0
        self.rows = torch.arange(batch, device=device)
        self.remaining = [length] * batch  # per row, mirrored from ctx.committed
        self.span_valid = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        self.valid_counts = [0] * batch  # valid span slots per row (span_valid.sum(1))
        self.widths: list[int] = []
        self.counts: list[torch.Tensor] = []
        self.forward_seconds: list[float] = []
        self.step_seconds: list[float] = []
        self.diagnostics: list[dict[str, torch.Tensor]] = []
        self.fronts: Fronts | None = None  # set once a proposal places its slots (core/fronts.py)

    def step(self) -> None:
        ctx, start = self.ctx, time.perf_counter()
        first_plan = self._planner is None  # the profile may be loaded during this propose
        # propose
        proposal = self.strategy.propose(ctx)
        if proposal.offsets is not None or self.fronts is not None:  # placed slots: core/fronts.py
            self.fronts = self.fronts or Fronts(self)
            return self.fronts.step(proposal, start)
        check_proposal(proposal, ctx.batch, ctx.vocab_size, self.strategy)
        width = proposal.width
        first = ctx.step == 0
        if first:
            inputs, offsets = proposal.tokens, ctx.offsets(width)
        else:
            pending = ctx.tokens.gather(1, (ctx.committed - 1).unsqueeze(1))
            inputs, offsets = torch.cat([pending, proposal.tokens], 1), ctx.offsets(width + 1, start=-1)
        noisy = proposal.noisy
        if noisy is not None and not first:  # the pending token is always fed clean (level 0)
            noisy = NoisyInputs(
                embeds=torch.cat([torch.zeros_like(noisy.embeds[:, :1]), noisy.embeds], 1),
                level=torch.cat([torch.zeros_like(noisy.level[:, :1]), noisy.level], 1),
            )
        key_valid = torch.cat([self.span_valid, torch.ones_like(inputs, dtype=torch.bool)], 1)

        # score: exactly one forward pass, counted here
        t0 = time.perf_counter()
        active = None if min(self.remaining) > 0 else ctx.committed < ctx.length
        scores = self.session.forward(Window(inputs, offsets, key_valid, first, noisy, active))
        self.forward_seconds.append(time.perf_counter() - t0)
        self.widths.append(width)
        expected = (ctx.batch, width + 1, ctx.vocab_size)
        if tuple(scores.cond.shape) != expected:
            raise BackboneError(f"backbone {self.backbone.name!r} returned logits {tuple(scores.cond.shape)}, expected {expected}")
        if self.sampling.uses_cfg:
            self._check_guidance(scores.uncond, expected)

        # process
        p = target_probs(scores, ctx.allowed(width + 1), self.sampling, step=ctx.step)

        # verify
        verdict = self.strategy.verify(ctx, proposal, p)

        # commit: drafts[:accepted] then next_token, capped at each row's remaining length. The
        # whole window is written; slots past `take` lie beyond `committed` and are overwritten later.
        take = torch.minimum(verdict.accepted + 1, ctx.length - ctx.committed)
        accepted, taken = torch.stack([verdict.accepted, take]).tolist()
        if min(accepted) < 0 or max(accepted) > width:
            raise ConfigError(f"strategy {self.strategy.name!r} accepted {accepted} drafts of a window of {width}")
        candidates = torch.cat([proposal.tokens, verdict.next_token.unsqueeze(1)], 1)
        candidates[self.rows, verdict.accepted] = verdict.next_token
        if ctx.length - min(self.remaining) + width + 1 > ctx.tokens.shape[1]:  # a window wider than the span
            ctx.tokens = torch.cat([ctx.tokens, ctx.tokens.new_zeros(ctx.batch, width + 1)], 1)
        slots = ctx.committed.unsqueeze(1) + torch.arange(width + 1, device=ctx.device)
        ctx.tokens.scatter_(1, slots, candidates)

        # cache: keep the slots of inputs that are now committed; the newest token stays pending
        keep = [t - 1 + (0 if first else 1) if t > 0 else 0 for t in taken]
        kept = max(keep)
        if inputs.shape[1] - kept:
            self.session.crop(inputs.shape[1] - kept)
        new_valid = torch.arange(kept, device=ctx.device) < torch.tensor(keep, device=ctx.device).unsqueeze(1)
        self.span_valid = torch.cat([self.span_valid, new_valid], 1)
        self.valid_counts = [c + k for c, k in zip(self.valid_counts, keep)]
        if self._planner is not None:
            self._planner.update(accepted, width, [r > 0 for r in self.remaining])
        self._compact_if_sparse()

        ctx.committed = ctx.committed + take
        self.remaining = [r - t for r, t in zip(self.remaining, taken)]
        ctx.longest_remaining = max(self.remaining)
        ctx.step += 1
        self.counts.append(take)
        self.diagnostics.append(verdict.diagnostics)
        self.step_seconds.append(time.perf_counter() - start - self.setup_seconds * first_plan)

    def _plan(self, widest: int) -> int:
        """The window of this pass for a strategy that sizes it automatically (`window="auto"`)."""
        if self._planner is None:  # once per decode; its time is not a pass's
            t0 = time.perf_counter()
            self._planner = WindowPlanner(profile_for(self.backbone, self.sampling, self.ctx.batch, self.start_options))
            self.setup_seconds += time.perf_counter() - t0
        return self._planner.choose(sum(r > 0 for r in self.remaining), widest)

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
            raise BackboneError(f"backbone {name!r} returned unconditional logits {tuple(uncond.shape)}, expected {expected}")

    def _compact_if_sparse(self) -> None:
        compacted = compact_holes(self.session, self.span_valid, self.valid_counts)
        if compacted is not None:
            _, self.span_valid = compacted

    def _diagnostics(self) -> dict[str, torch.Tensor]:
        """Name -> Float[passes, B] of every diagnostic any verdict reported (0 where one did not)."""
        names = dict.fromkeys(k for d in self.diagnostics for k in d)
        zero = torch.zeros(self.ctx.batch)
        return {n: torch.stack([d[n].float().cpu() if n in d else zero for d in self.diagnostics]) for n in names}

    def run(self, max_passes: int | None = None) -> DecodeResult:
        self.strategy.reset(self.ctx)
        limit = max_passes if max_passes is not None else self.ctx.length + 1
        while max(self.remaining) > 0:
            if self.ctx.step >= limit:
                raise BackboneError(f"decode did not finish within {limit} forward passes")
            self.step()
        trace = Trace(
            self.widths, torch.stack(self.counts).cpu(), self.forward_seconds, self.step_seconds, self.setup_seconds,
            self._diagnostics(),
        )
        return DecodeResult(self.ctx.tokens[:, : self.ctx.length].clone(), trace, self.session)


def decode(
    backbone: Backbone,
    strategy: Strategy | str,
    prompts: Sequence[str],
    *,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    strategy_options: dict[str, Any] | None = None,
    profile: CostProfile | None = None,
    **start_options: Any,
) -> DecodeResult:
    """Decode one batch of `prompts` with `strategy` (an instance or a registered name).

    `sampling` defaults to the backbone's reference settings; `start_options` go to
    `backbone.start` (image size, ...). `profile` is the cost profile automatic windows are
    chosen with (default: this machine's stored profile of the backbone, measured when missing).
    """
    if isinstance(strategy, str):
        from ..api import get_strategy

        strategy = get_strategy(strategy, **(strategy_options or {}))
    elif strategy_options:
        raise ConfigError("strategy_options only apply when the strategy is given by name")
    elif not isinstance(strategy, Strategy):
        raise ConfigError(f"strategy must be a registered name or a pardecode.Strategy, got {type(strategy).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if isinstance(prompts, str) or not len(prompts):
        raise ConfigError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    sampling = sampling or backbone.default_sampling
    session = backbone.start(list(prompts), sampling, **start_options)
    return Decoder(backbone, session, strategy, sampling, int(seed), profile, start_options).run()
