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

import time
from collections.abc import Sequence
from typing import Any

import torch

from .backbone import Backbone, NoisyInputs, Session, Window
from .config import SamplingConfig
from .errors import BackboneError, ConfigError
from .fronts import Fronts
from .sampling import target_probs
from .strategy import DecodeContext, Proposal, Strategy, Verdict
from .trace import DecodeResult, Trace

HOLE_FRACTION = 0.25  # compact the span cache once holes exceed this fraction of its slots


def _check_proposal(proposal: Proposal, batch: int, vocab: int, strategy: Strategy) -> None:
    tokens = proposal.tokens
    if tokens.dim() != 2 or tokens.shape[0] != batch or tokens.dtype != torch.long:
        raise ConfigError(f"strategy {strategy.name!r} proposed {tuple(tokens.shape)} {tokens.dtype}; expected Long[{batch}, W]")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
        raise ConfigError(f"strategy {strategy.name!r} proposed token ids outside [0, {vocab})")


def _check_verdict(verdict: Verdict, width: int, strategy: Strategy) -> None:
    acc = verdict.accepted
    if int(acc.min()) < 0 or int(acc.max()) > width:
        raise ConfigError(f"strategy {strategy.name!r} accepted {acc.tolist()} drafts of a window of {width}")


class Decoder:
    """One decode of a batch: the state the loop carries from pass to pass."""

    def __init__(self, backbone: Backbone, session: Session, strategy: Strategy, sampling: SamplingConfig, seed: int):
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
            allowed_at=self.layout.allowed,
            tokens=torch.zeros(batch, length, dtype=torch.long, device=device),
            committed=torch.zeros(batch, dtype=torch.long, device=device),
            token_embeddings=backbone.token_embeddings if backbone.noise_ready() else None,
            backbone=backbone.name,
            layout=self.layout,
        )
        self.span_valid = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        self.widths: list[int] = []
        self.counts: list[torch.Tensor] = []
        self.forward_seconds: list[float] = []
        self.step_seconds: list[float] = []
        self.fronts: Fronts | None = None  # set once a proposal places its slots (core/fronts.py)

    def step(self) -> None:
        ctx, start = self.ctx, time.perf_counter()
        # propose
        proposal = self.strategy.propose(ctx)
        if proposal.offsets is not None or self.fronts is not None:  # placed slots: core/fronts.py
            self.fronts = self.fronts or Fronts(self)
            return self.fronts.step(proposal, start)
        _check_proposal(proposal, ctx.batch, ctx.vocab_size, self.strategy)
        width = proposal.width
        first = ctx.step == 0
        rows = torch.arange(ctx.batch, device=ctx.device)
        if first:
            inputs, offsets = proposal.tokens, ctx.offsets(width)
        else:
            pending = ctx.tokens[rows, ctx.committed - 1].unsqueeze(1)
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
        running = ctx.committed < ctx.length
        active = None if bool(running.all()) else running
        scores = self.session.forward(Window(inputs, offsets, key_valid, first, noisy, active))
        self.forward_seconds.append(time.perf_counter() - t0)
        self.widths.append(width)
        expected = (ctx.batch, width + 1, ctx.vocab_size)
        if tuple(scores.cond.shape) != expected:
            raise BackboneError(f"backbone {self.backbone.name!r} returned logits {tuple(scores.cond.shape)}, expected {expected}")

        # process
        p = target_probs(scores, ctx.allowed(width + 1), self.sampling, step=ctx.step)

        # verify
        verdict = self.strategy.verify(ctx, proposal, p)
        _check_verdict(verdict, width, self.strategy)

        # commit: drafts[:accepted] then next_token, capped at each row's remaining length
        remaining = ctx.length - ctx.committed
        take = torch.minimum(verdict.accepted + 1, remaining)
        candidates = torch.cat([proposal.tokens, proposal.tokens.new_zeros(ctx.batch, 1)], 1)
        candidates[rows, verdict.accepted] = verdict.next_token
        slot = torch.arange(width + 1, device=ctx.device)
        write = slot < take.unsqueeze(1)
        positions = (ctx.committed.unsqueeze(1) + slot).clamp(max=ctx.tokens.shape[1] - 1)
        ctx.tokens[rows.unsqueeze(1).expand_as(positions)[write], positions[write]] = candidates[write]

        # cache: keep the slots of inputs that are now committed; the newest token stays pending
        keep = torch.where(take > 0, take - 1 + (0 if first else 1), 0)
        kept = int(keep.max())
        if inputs.shape[1] - kept:
            self.session.crop(inputs.shape[1] - kept)
        new_valid = torch.arange(inputs.shape[1], device=ctx.device) < keep.unsqueeze(1)
        self.span_valid = torch.cat([self.span_valid, new_valid[:, :kept]], 1)
        self._compact_if_sparse()

        ctx.committed = ctx.committed + take
        ctx.step += 1
        self.counts.append(take)
        self.step_seconds.append(time.perf_counter() - start)

    def _compact_if_sparse(self) -> None:
        """Drop the cache's holes once they are more than a quarter of its span slots."""
        valid = self.span_valid
        counts = valid.sum(1)
        longest = int(counts.max()) if valid.numel() else 0
        if valid.shape[1] - longest <= HOLE_FRACTION * valid.shape[1]:
            return
        order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices[:, :longest]
        if self.session.compact(order):
            self.span_valid = torch.arange(longest, device=valid.device) < counts.unsqueeze(1)

    def run(self, max_passes: int | None = None) -> DecodeResult:
        self.strategy.reset(self.ctx)
        limit = max_passes if max_passes is not None else self.ctx.length + 1
        while bool((self.ctx.committed < self.ctx.length).any()):
            if self.ctx.step >= limit:
                raise BackboneError(f"decode did not finish within {limit} forward passes")
            self.step()
        trace = Trace(self.widths, torch.stack(self.counts).cpu(), self.forward_seconds, self.step_seconds)
        return DecodeResult(self.ctx.tokens[:, : self.ctx.length].clone(), trace, self.session)


def decode(
    backbone: Backbone,
    strategy: Strategy | str,
    prompts: Sequence[str],
    *,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    strategy_options: dict[str, Any] | None = None,
    **start_options: Any,
) -> DecodeResult:
    """Decode one batch of `prompts` with `strategy` (an instance or a registered name).

    `sampling` defaults to the backbone's reference settings; `start_options` go to
    `backbone.start` (image size, ...).
    """
    if isinstance(strategy, str):
        from .plugins import plugins

        strategy = plugins().strategies.get(strategy).factory(**(strategy_options or {}))
    elif strategy_options:
        raise ConfigError("strategy_options only apply when the strategy is given by name")
    if isinstance(prompts, str) or not len(prompts):
        raise ConfigError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    sampling = sampling or backbone.default_sampling
    session = backbone.start(list(prompts), sampling, **start_options)
    return Decoder(backbone, session, strategy, sampling, seed).run()
