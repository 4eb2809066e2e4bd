"""Verification primitives, vectorised over batch and window.

Shapes: p is Float[B, W+1, V] (the target for the W draft slots plus one bonus slot), drafts are
Long[B, W], q is Float[B, W, V] (the distributions the drafts were sampled from) or None when the
drafts are deterministic (q one-hot on the draft). Each function returns (accepted Long[B],
next_token Long[B]): the first `accepted` drafts are kept and `next_token` follows them.
"""

from __future__ import annotations

import torch


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One categorical draw per leading index of Float[..., V] probabilities (need not sum to 1).

    Inverse-CDF sampling: one uniform per row against a float64 running sum, many times faster
    than torch.multinomial on wide vocabularies. A zero-probability token is never drawn: the
    uniform is kept strictly below the total, and a flat stretch of the CDF is never the first
    entry exceeding it.
    """
    return sample_with(probs, uniforms(probs, generator))


def uniforms(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Float64[N, 1]: the uniforms `sample` draws for Float[..., V] probabilities (N leading indices)."""
    return torch.rand(probs[..., 0].numel(), 1, generator=generator, device=probs.device, dtype=torch.float64)


def sample_with(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """`sample` given its uniforms (`uniforms`): a caller that draws several candidates per slot
    and keeps one can draw every uniform in order, then run the inverse CDF on the kept ones only."""
    cdf = probs.reshape(-1, probs.shape[-1]).double().cumsum(-1)
    total = cdf[:, -1:]
    x = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, x, right=True).reshape(probs.shape[:-1])


def first_false(ok: torch.Tensor) -> torch.Tensor:
    """Long[B]: length of the all-True prefix of each row of Bool[B, W]."""
    return ok.long().cumprod(-1).sum(-1)


def take_per_row(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b]] for every row b of x: [B, T, ...] with index Long[B]: each row's entry at its
    own slot (the slot after its accepted drafts, say), in one indexing operation."""
    return x[torch.arange(x.shape[0], device=x.device), index]


def residual_distribution(p: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """normalize(max(0, p - kept)) over the last axis; p itself where nothing is left.

    What a token is drawn from once a proposal that covered `kept` of p's mass was rejected: the
    correction of speculative sampling (`kept` = q), of a relaxed rule (`kept` = q * a) and of each
    step of recursive rejection sampling. Where p <= kept everywhere rejection had probability 0, so
    p itself is returned rather than a division by zero.
    """
    residual = (p - kept).clamp_min(0)
    mass = residual.sum(-1, keepdim=True)
    return torch.where(mass > 0, residual / mass.clamp_min(torch.finfo(p.dtype).tiny), p)


def _one_hot_like(tokens: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(tokens, p.shape[-1]).to(p.dtype)


def acceptance_probability(
    p: torch.Tensor, drafts: torch.Tensor, q: torch.Tensor | None, given: torch.Tensor | None = None
) -> torch.Tensor:
    """Float[B, W]: min(1, p_i(x_i) / q_i(x_i)) for each draft (q one-hot when None).

    `given` (Bool[B, W]) marks drafts that were given rather than sampled: their q is one-hot on
    the draft whatever `q` holds there, so no dense one-hot q has to be built for them.
    """
    p_draft = p[:, : drafts.shape[1]].gather(-1, drafts.unsqueeze(-1)).squeeze(-1)
    if q is None:
        return p_draft
    q_draft = q.gather(-1, drafts.unsqueeze(-1)).squeeze(-1)
    if given is not None:
        q_draft = q_draft.masked_fill(given, 1.0)
    return (p_draft / q_draft.clamp_min(torch.finfo(q.dtype).tiny)).clamp(max=1)


def correction_distribution(
    p: torch.Tensor,
    drafts: torch.Tensor,
    q: torch.Tensor | None,
    accepted: torch.Tensor,
    given: torch.Tensor | None = None,
) -> torch.Tensor:
    """Float[B, V]: the distribution of the token after `accepted` drafts.

    normalize(max(0, p - q)) at a rejected slot; p itself at the bonus slot (every draft kept).
    `given` as in `acceptance_probability`.
    """
    width = drafts.shape[1]
    p_next = take_per_row(p, accepted)
    if not width:
        return p_next
    slot = accepted.clamp(max=width - 1)
    if q is None:
        q_next = _one_hot_like(take_per_row(drafts, slot), p)
    else:
        q_next = take_per_row(q, slot)
        if given is not None:
            given_next = take_per_row(given, slot).unsqueeze(-1)
            q_next = torch.where(given_next, _one_hot_like(take_per_row(drafts, slot), p), q_next)
    # no residual mass only when p == q at that slot, where rejection has probability 0 anyway
    return torch.where((accepted < width).unsqueeze(-1), residual_distribution(p_next, q_next), p_next)


def speculative_accept(
    p: torch.Tensor,
    drafts: torch.Tensor,
    q: torch.Tensor | None,
    generator: torch.Generator | None = None,
    given: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Speculative sampling: the committed tokens are distributed exactly as p, whatever q is.

    Draft i is accepted with probability min(1, p_i(x_i) / q_i(x_i)), left to right; the first
    rejected slot is resampled from normalize(max(0, p - q)); if every draft passes, the bonus
    slot is sampled from p. `given` (Bool[B, W]) marks drafts whose q is one-hot on the draft.
    """
    u = torch.rand(drafts.shape, generator=generator, device=p.device, dtype=p.dtype)
    accepted = first_false(u < acceptance_probability(p, drafts, q, given))
    return accepted, sample(correction_distribution(p, drafts, q, accepted, given), generator)


def greedy_accept(p: torch.Tensor, drafts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact-match acceptance: keep drafts while they equal the arg-max; then the arg-max itself."""
    best = p.argmax(-1)
    accepted = first_false(drafts == best[:, : drafts.shape[1]])
    return accepted, take_per_row(best, accepted)


def maximal_redraw(
    p: torch.Tensor, previous: torch.Tensor, q: torch.Tensor | None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Long[B, W+1]: a draw from p at every slot, maximally coupled with the slot's previous draft.

    `previous` is Long[B, W] (drafts of the first W slots, drawn from q: Float[B, W, V], one-hot
    when None); the last slot of p has no previous draft and gets an independent draw. At a slot
    the previous draft x stays with probability min(1, p(x) / q(x)), else the slot is redrawn from
    normalize(max(0, p - q)): the result is distributed exactly as p and equals x with probability
    sum min(p, q) = 1 - TV(p, q), the most any coupling allows (the maximal coupling used to
    stabilise Jacobi redraws in arXiv 2510.24211). Vectorised: one uniform and one residual draw
    per slot.
    """
    width = previous.shape[1]
    p_slots = p[:, :width]
    q = _one_hot_like(previous, p) if q is None else q
    stay = torch.rand(previous.shape, generator=generator, device=p.device, dtype=p.dtype)
    stay = stay < acceptance_probability(p_slots, previous, q)
    redrawn = sample(residual_distribution(p_slots, q), generator)
    tail = sample(p[:, width:], generator)
    return torch.cat([torch.where(stay, previous, redrawn), tail], 1)


def relaxed_accept(
    p: torch.Tensor,
    drafts: torch.Tensor,
    q: torch.Tensor | None,
    acceptance: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Speculative sampling with a relaxed acceptance rule; lossy unless the rule is min(1, p/q).

    `acceptance` is Float[B, W, V]: for every slot, the probability of keeping each token should it
    be the draft (a relaxed rule raises it above the exact min(1, p/q)). Drafts are kept left to
    right while a uniform falls below their entry; the first rejected slot is resampled from
    normalize(max(0, p - q * a)) (normalize(max(0, p - q)) when a is exact), the bonus slot from p.
    Returns (accepted, next_token, tv): tv is Float[B, W+1], per slot the total variation distance
    between the distribution of the token the rule commits there, q * a + (1 - sum q * a) * residual,
    and p (both given the slot's prefix). It is 0 wherever the rule is exact; summed over a pass's
    committed slots it bounds how far the pass's tokens are from AR sampling.
    """
    width = drafts.shape[1]
    q = _one_hot_like(drafts, p) if q is None else q
    a = acceptance.clamp(0, 1)
    u = torch.rand(drafts.shape, generator=generator, device=p.device, dtype=p.dtype)
    accepted = first_false(u < a.gather(-1, drafts.unsqueeze(-1)).squeeze(-1))
    kept = q * a  # Float[B, W, V]: mass the rule keeps per draft token
    residual = residual_distribution(p[:, :width], kept)
    rejected = (1 - kept.sum(-1, keepdim=True)).clamp_min(0)
    out = kept + rejected * residual
    tv = torch.cat([0.5 * (out - p[:, :width]).abs().sum(-1), p.new_zeros(p.shape[0], 1)], 1)
    dist = torch.cat([residual, p[:, width:]], 1)
    return accepted, sample(take_per_row(dist, accepted), generator), tv


def exact_acceptance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Float[B, W, V]: min(1, p/q) for every token (1 where q is 0): the lossless rule, tokenwise."""
    return torch.where(q > 0, p / q.clamp_min(torch.finfo(q.dtype).tiny), torch.ones_like(q)).clamp(max=1)


def multi_draft_accept(
    p: torch.Tensor,
    candidates: torch.Tensor,
    q: torch.Tensor,
    generator: torch.Generator | None = None,
    given: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Recursive rejection sampling over K candidates for one slot: the token is distributed as p.

    p is Float[B, V], candidates Long[B, K]; q is the distribution each candidate was drawn from,
    Float[B, V] (shared) or Float[B, K, V], and `given` (Bool[B, K]) marks candidates fixed before
    the pass (q one-hot on them, e.g. the most likely tokens of a prediction). Candidate k is kept
    with probability min(1, r_k(x_k) / q_k(x_k)), where r_1 = p and each rejection moves on to
    r_{k+1} = normalize(max(0, r_k - q_k)); if all K are rejected the token is drawn from r_{K+1}.
    As long as candidate k, given the candidates before it, is distributed as q_k (i.i.d. draws
    from q, or fixed tokens), step k outputs min(q_k, r_k) + max(0, r_k - q_k) = r_k, so by
    induction the token follows p (the multi-candidate rule of SpecInfer, arXiv 2305.09781). With
    K = 1 it is `speculative_accept` for one draft. Returns (chosen Long[B]: the kept candidate, -1
    if none; token Long[B]). Loops over the K candidates, vectorised over the batch.
    """
    chosen = torch.full(candidates.shape[:1], -1, dtype=torch.long, device=p.device)
    r = p
    tiny = torch.finfo(p.dtype).tiny
    for k in range(candidates.shape[1]):
        x = candidates[:, k : k + 1]
        q_k = q if q.dim() == 2 else q[:, k]
        if given is not None:
            q_k = torch.where(given[:, k : k + 1], _one_hot_like(x.squeeze(1), p), q_k)
        a = (r.gather(-1, x) / q_k.gather(-1, x).clamp_min(tiny)).clamp(max=1).squeeze(-1)
        u = torch.rand(a.shape, generator=generator, device=p.device, dtype=p.dtype)
        chosen = torch.where((chosen < 0) & (u < a), k, chosen)
        r = torch.where((chosen < 0).unsqueeze(-1), residual_distribution(r, q_k), r)
    token = torch.where(
        chosen >= 0, candidates.gather(1, chosen.clamp(min=0).unsqueeze(1)).squeeze(1), sample(r, generator)
    )
    return chosen, token
