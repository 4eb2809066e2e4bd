"""The processing step: raw logits -> target distribution p, vectorised over [batch, window, vocab].

One pipeline for every strategy, in the order the reference generators apply it:
classifier-free guidance -> allowed-token mask (layout) -> temperature -> top-k -> top-p -> softmax.
Both the target p and any draft distribution q a strategy samples from come out of it, so
acceptance ratios compare like with like.
"""

from __future__ import annotations

import torch

from .backbone import Scores
from .config import SamplingConfig
from .errors import BackboneError


def check_finite(logits: torch.Tensor, what: str) -> None:
    """Raise a `BackboneError` naming the first row/position whose logits are NaN or infinite."""
    bad = ~torch.isfinite(logits)
    if bool(bad.any()):
        row, pos, tok = (int(i) for i in bad.nonzero()[0])
        value = float(logits[row, pos, tok])
        raise BackboneError(
            f"{what}: non-finite logit {value} at row {row}, window position {pos}, token {tok}; "
            "the backbone must return finite logits (mask tokens with a large negative number)"
        )


def guided_logits(scores: Scores, sampling: SamplingConfig) -> torch.Tensor:
    """Classifier-free guidance: g * (cond - uncond) + uncond, or cond when guidance is off."""
    cond = scores.cond.float()
    if not sampling.uses_cfg or scores.uncond is None:
        return cond
    uncond = scores.uncond.float()
    return uncond + sampling.cfg_scale * (cond - uncond)


def filter_logits(logits: torch.Tensor, allowed: torch.Tensor | None, sampling: SamplingConfig) -> torch.Tensor:
    """Apply mask, temperature, top-k and top-p; removed tokens get -inf.

    `allowed` must allow at least one token per position (the loop checks the layout once).
    """
    if allowed is not None:
        logits = torch.where(allowed, logits, float("-inf"))
    if sampling.greedy:
        return logits
    if sampling.temperature != 1:  # x / 1 is x: one operation fewer per pass at the usual setting
        logits = logits / sampling.temperature
    vocab = logits.shape[-1]
    if 0 < sampling.top_k < vocab:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass strictly before it already reaches top_p (the top token stays)
        drop_sorted = (probs.cumsum(-1) - probs) >= sampling.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def target_probs(
    scores: Scores, allowed: torch.Tensor | None, sampling: SamplingConfig, *, step: int = 0
) -> torch.Tensor:
    """Float[B, W+1, V] target distribution p of a forward pass's logits (one-hot when greedy)."""
    guided = guided_logits(scores, sampling)
    # a non-finite logit in either branch makes the guided logits, and so their sum, non-finite: one
    # reduction per pass; only a non-finite sum (or one that overflowed) pays for the full check
    if not bool(guided.sum().isfinite()) and not bool(torch.isfinite(guided).all()):
        for name, logits in (("conditional", scores.cond), ("unconditional", scores.uncond)):
            if logits is not None:
                check_finite(logits, f"forward pass {step} ({name} branch)")
        raise BackboneError(f"forward pass {step}: guidance scale {sampling.cfg_scale} overflowed the logits")
    logits = filter_logits(guided, allowed, sampling)
    if sampling.greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(torch.float32)
    return logits.softmax(-1)
