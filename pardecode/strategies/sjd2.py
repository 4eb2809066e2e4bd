"""Speculative Jacobi-Denoising Decoding (SJD2, arXiv 2510.08994).

New window slots start as Gaussian noise in the (normalised) embedding space, noisier the further
they lie from the committed prefix. Each pass is one forward pass over the pending token, the clean
drafts and the noisy slots. Then, left to right:
- a leading run of clean drafts is verified with the speculative rule against p; because every
  input before a verified slot is clean, p there is the model's clean-prefix distribution, so the
  committed sequence is exactly AR-distributed whatever the noise does;
- the token after the accepted run is the residual resample (rejected clean draft), a plain sample
  from p (the slot was still noisy), or the bonus;
- unaccepted clean drafts take the Jacobi update (redrawn from this pass's p, which becomes q);
- noisy slots take one deterministic DDIM step toward the embedding of a token drawn from this
  pass's p for them; at level 0 that token becomes a clean draft with q = p.
Redraws are Gumbel-coupled across passes by default (`coupling="gumbel"`, see `CoupledDraws`):
the denoising target and the drafts then move only when p does, which the measurements in
docs/results.md show matters; `coupling="independent"` redraws afresh every pass; `coupling="maximal"` keeps
each slot's last token with probability min(1, p/q) and redraws from max(0, p - q) otherwise.
Slots that the layout forces (end-of-line, end tokens) are always clean.
"""

from __future__ import annotations

import attrs
import torch

from ..core.backbone import NoisyInputs
from ..core.claims import Claim
from ..core.errors import ConfigError
from ..core.noise import NoiseSchedule, ddim_step, vp_coefficients
from ..core.strategy import AUTO_WIDEST, DecodeContext, Proposal, Strategy, Verdict, positive_int, window_size
from ..core.verify import (
    acceptance_probability,
    correction_distribution,
    first_false,
    maximal_redraw,
    sample,
    take_per_row,
)
from .drafting import CoupledDraws, auto_or, carry_over, check_coupling, narrowed, random_tokens


def _schedule_value(_, attribute, value):
    if not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{attribute.name} must be a number > 0, got {value!r}")


@attrs.define
class SJD2(Strategy):
    """Speculative Jacobi-Denoising Decoding: noisy-embedding drafts, lossless verification."""

    name = "sjd2"
    claim = Claim.exact()

    # defaults chosen with the `sjd2-tuning` benchmark suite on fashion-sjd2 (docs/results.md)
    #: drafts per pass, or "auto": chosen before each pass for throughput (`pardecode.core.windows`)
    window: int | str = attrs.field(default="auto", validator=window_size())
    steps: int = attrs.field(default=4, validator=positive_int("steps"))
    sigma_min: float = attrs.field(default=0.1, validator=_schedule_value)
    sigma_max: float = attrs.field(default=10.0, validator=_schedule_value)
    rho: float = attrs.field(default=7.0, validator=_schedule_value)
    coupling: str = attrs.field(default="gumbel", validator=check_coupling)
    # state of the W slots: tokens (drafts, or the last token drawn for a noisy slot), their
    # draft distribution q, the denoising steps each still needs (0 = clean) and the noisy inputs
    _tokens: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _q: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _k: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _z: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _sigmas: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _coupled: CoupledDraws | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self):
        self.schedule()  # validates the constants now, not at the first decode

    def schedule(self) -> NoiseSchedule:
        return NoiseSchedule(self.steps, self.sigma_min, self.sigma_max, self.rho)

    def reset(self, ctx: DecodeContext) -> None:
        if ctx.token_embeddings is None:
            raise ConfigError(
                f"strategy 'sjd2' needs a backbone fine-tuned to read noisy inputs; backbone "
                f"{ctx.backbone!r} has no noise conditioning. Make one with `pardecode finetune-sjd2 "
                f"--backbone {ctx.backbone or 'NAME'} --out DIR`, then decode with that checkpoint."
            )
        self._sigmas = self.schedule().sigmas().to(ctx.device)
        self._tokens = self._q = self._k = self._z = None
        self._coupled = None
        if self.coupling == "gumbel":
            self._coupled = CoupledDraws(ctx.batch, auto_or(self.window, 0), ctx.vocab_size, ctx.generator, ctx.device)

    # --- fresh slots --------------------------------------------------------------------------
    def _staircase(self, ctx: DecodeContext, slots: torch.Tensor) -> torch.Tensor:
        """Steps a fresh slot at window index j needs: rising linearly from 1 (front) to `steps` at
        the widest window. An automatic window keeps the staircase of its widest choice, so a slot's
        noise level depends on its distance from the front, not on this pass's width."""
        k = torch.ceil(self.steps * (slots + 1).float() / auto_or(self.window, AUTO_WIDEST)).long()
        return k.clamp(1, self.steps)

    def _fresh(self, ctx: DecodeContext, offsets: torch.Tensor, slots: torch.Tensor):
        """(tokens, q, k, z) for fresh slots at `offsets` (window indices `slots`)."""
        allowed = ctx.allowed_at(offsets)
        tokens = random_tokens(ctx, offsets)
        k = self._staircase(ctx, slots).expand_as(offsets).clone()
        if allowed is not None:  # a slot the layout forces is a clean, certain draft
            forced = allowed.sum(-1) == 1
            k = torch.where(forced, 0, k)
        _, s = vp_coefficients(self._sigmas[k])
        dim = ctx.token_embeddings(tokens[:, :1]).shape[-1]
        noise = torch.randn(*offsets.shape, dim, generator=ctx.generator, device=ctx.device)
        z = s.unsqueeze(-1) * noise  # pure noise around the normalised mean (x0 unknown)
        q = torch.nn.functional.one_hot(tokens, ctx.vocab_size).float()
        return tokens, q, k, z

    # --- the strategy ---------------------------------------------------------------------------
    def propose(self, ctx: DecodeContext) -> Proposal:
        width = ctx.draft_width(self.window)
        if self._tokens is None:
            slots = torch.arange(width, device=ctx.device)
            self._tokens, self._q, self._k, self._z = self._fresh(ctx, ctx.offsets(width), slots)
        have = self._tokens.shape[1]
        if width > have:  # an automatic window grew: the new slots start as fresh noise
            fresh = self._fresh(
                ctx, ctx.offsets(width - have, start=have), torch.arange(have, width, device=ctx.device)
            )
            state = (self._tokens, self._q, self._k, self._z)
            self._tokens, self._q, self._k, self._z = (torch.cat([old, new], 1) for old, new in zip(state, fresh))
        self._tokens, self._q, self._k, self._z = narrowed(width, self._tokens, self._q, self._k, self._z)
        if self._coupled is not None:
            self._coupled.fit(width)
        noisy = self._k > 0
        inputs = NoisyInputs(embeds=self._z * noisy.unsqueeze(-1), level=self._sigmas[self._k]) if noisy.any() else None
        return Proposal(self._tokens, inputs)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict:
        drafts, width = self._tokens, self._tokens.shape[1]
        clean = self._k == 0
        # only clean drafts behind an all-clean prefix can be accepted (first_false stops at noise)
        a = acceptance_probability(p, drafts, self._q) * clean
        u = torch.rand(a.shape, generator=ctx.generator, device=ctx.device)
        accepted = first_false(u < a)
        dist = correction_distribution(p, drafts, self._q, accepted)
        if width:  # a noisy slot's token is a plain draw from p: nothing was drafted there
            was_noisy = (accepted < width) & ~take_per_row(clean, accepted.clamp(max=width - 1))
            dist = torch.where(was_noisy.unsqueeze(-1), take_per_row(p, accepted), dist)
        next_token = sample(dist, ctx.generator)
        self._advance(ctx, p, accepted)
        return Verdict(accepted, next_token)

    def _advance(self, ctx: DecodeContext, p: torch.Tensor, accepted: torch.Tensor) -> None:
        """Shift the window past the committed tokens; Jacobi-update clean slots, denoise noisy ones."""
        width = self._tokens.shape[1]
        if self.coupling == "maximal":  # a slot's last token moves only as far as p demands
            draws = maximal_redraw(p, self._tokens, self._q, ctx.generator)
        else:
            draws = sample(p, ctx.generator) if self._coupled is None else self._coupled.draw(p)
        drawn, stale = carry_over(draws, accepted, width)
        p_new, _ = carry_over(p, accepted, width)
        pad = lambda x, v: torch.cat([x, torch.full_like(x[:, :1], v)], 1)  # noqa: E731 (index W: no old slot)
        k_old, _ = carry_over(pad(self._k, 0), accepted, width)
        z_old, _ = carry_over(torch.cat([self._z, torch.zeros_like(self._z[:, :1])], 1), accepted, width)

        k_new = (k_old - 1).clamp(min=0)
        sig = self._sigmas
        x0 = ctx.token_embeddings(drawn)
        z_new = torch.where((k_new > 0).unsqueeze(-1), ddim_step(z_old, x0, sig[k_old], sig[k_new]), z_old)
        tokens, q = drawn, p_new  # clean slots (old or just denoised): the drawn token, q = p

        offsets = ctx.offsets(width, start=accepted + 1)
        f_tokens, f_q, f_k, f_z = self._fresh(ctx, offsets, torch.arange(width, device=ctx.device))
        s3 = stale.unsqueeze(-1)
        self._tokens = torch.where(stale, f_tokens, tokens)
        self._q = torch.where(s3, f_q, q)
        self._k = torch.where(stale, f_k, k_new)
        self._z = torch.where(s3, f_z, z_new)
        if self._coupled is not None:
            self._coupled.advance(accepted)
