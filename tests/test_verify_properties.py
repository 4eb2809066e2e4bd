"""Speculative acceptance reproduces the target distribution p, whatever the draft distribution q.

Exact check: for one slot, P(out = y) = sum_x q(x) [a(x) 1{x=y} + (1 - a(x)) r_x(y)], with the
acceptance probability a and the correction distribution r_x computed by the library's own
`acceptance_probability` / `correction_distribution`, must equal p to 1e-5.
Empirical check: 20,000 vectorised draws through `speculative_accept`, Pearson chi-square
goodness of fit against p (bins with expected count < 5 pooled), rejecting at p-value < 1e-4;
hypothesis runs derandomised with 25 examples, so a correct sampler fails with probability below
25 * 1e-4 = 0.25% and the run is reproducible. A negative control shows the test has power.
Every check runs on the `device` fixture ($PARDECODE_TEST_DEVICE, default the CPU); distributions
are drawn on the CPU, so each device checks the same ones.
"""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pardecode.core.verify import (
    acceptance_probability,
    correction_distribution,
    greedy_accept,
    multi_draft_accept,
    sample,
    speculative_accept,
)
from pardecode.testing.stats import goodness_of_fit

ALPHA = 1e-4
DRAWS = 20_000


@st.composite
def distributions(draw, min_vocab=2, max_vocab=64):
    vocab = draw(st.integers(min_vocab, max_vocab))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    sparsity = draw(st.sampled_from([0.0, 0.3, 0.7]))

    def one():
        logits = torch.randn(vocab, generator=g, dtype=torch.float64) * draw(st.sampled_from([0.5, 2.0, 5.0]))
        drop = torch.rand(vocab, generator=g) < sparsity
        drop[torch.randint(vocab, (1,), generator=g)] = False  # keep at least one token
        return logits.masked_fill(drop, float("-inf")).softmax(-1)

    return one(), one()


def pooled_chisquare(counts: np.ndarray, probs: np.ndarray) -> float:
    """p-value of Pearson's test, bins expecting < 5 pooled; 0 when an outcome of probability 0 was
    observed (`pardecode.testing.stats.goodness_of_fit`, what `pardecode certify` runs)."""
    return goodness_of_fit(counts, probs).p_chi2


def output_given_draft(p: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
    """Float[V(draft), V(out)]: exact output distribution of one verified slot for each draft x."""
    vocab, device = p.shape[0], p.device
    drafts = torch.arange(vocab, device=device).unsqueeze(1)
    pw = p.expand(vocab, 2, vocab)  # slot 0 verifies the draft, slot 1 is the bonus
    qw = None if q is None else q.expand(vocab, 1, vocab)
    a = acceptance_probability(pw, drafts, qw)[:, 0].unsqueeze(1)
    r = correction_distribution(pw, drafts, qw, torch.zeros(vocab, dtype=torch.long, device=device))
    return a * torch.eye(vocab, dtype=p.dtype, device=device) + (1 - a) * r


def generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def counts_of(tokens: torch.Tensor, vocab: int) -> np.ndarray:
    return np.bincount(tokens.cpu().numpy(), minlength=vocab)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(distributions())
def test_closed_form_output_is_p(device, pq):
    p, q = (x.to(device) for x in pq)
    out = (q.unsqueeze(1) * output_given_draft(p, q)).sum(0)  # drafts drawn from q
    torch.testing.assert_close(out, p, atol=1e-5, rtol=0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(distributions())
def test_closed_form_output_is_p_for_every_fixed_draft(device, pq):
    p = pq[0].to(device)
    per_draft = output_given_draft(p, None)  # a given (deterministic) draft: exact for each x
    torch.testing.assert_close(per_draft, p.expand_as(per_draft), atol=1e-5, rtol=0)


def _empirical(p, q, seed, device):
    g = generator(device, seed)
    p32, q32 = p.float().to(device), q.float().to(device)
    drafts = sample(q32.expand(DRAWS, 1, -1), g)
    accepted, nxt = speculative_accept(p32.expand(DRAWS, 2, -1), drafts, q32.expand(DRAWS, 1, -1), g)
    out = torch.where(accepted == 1, drafts[:, 0], nxt)
    return counts_of(out, p.shape[0])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(distributions(), st.integers(0, 2**16))
def test_empirical_output_matches_p(device, pq, seed):
    p, q = pq
    counts = _empirical(p, q, seed, device)
    assert pooled_chisquare(counts, p.numpy()) > ALPHA


def test_chisquare_has_power_against_accepting_every_draft(device):
    """Negative control: outputting the draft unverified (distribution q) is detected."""
    g = torch.Generator().manual_seed(0)
    p = torch.randn(16, generator=g).softmax(-1)
    q = torch.randn(16, generator=g).softmax(-1)
    drafts = sample(q.to(device).expand(DRAWS, -1), generator(device, 0) if device.type != "cpu" else g)
    counts = counts_of(drafts, 16)
    assert pooled_chisquare(counts, p.numpy()) < ALPHA


def test_bonus_token_when_every_draft_is_accepted(device):
    p = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]], device=device)
    accepted, nxt = speculative_accept(p, torch.tensor([[1, 2]], device=device), None)
    assert accepted.tolist() == [2] and nxt.tolist() == [0]


def test_rejected_slot_never_resamples_the_rejected_deterministic_draft(device):
    p = torch.tensor([[[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]], device=device).expand(2000, -1, -1)
    drafts = torch.zeros(2000, 1, dtype=torch.long, device=device)
    accepted, nxt = speculative_accept(p, drafts, None, generator(device, 1))
    assert (nxt[accepted == 0] == 1).all()  # residual of p minus a point mass on token 0
    assert 0.45 < accepted.float().mean() < 0.55  # accepted with probability p(0) = 0.5


def test_greedy_accept_keeps_matching_prefix_then_argmax(device):
    p = torch.nn.functional.one_hot(torch.tensor([[3, 1, 2, 0]], device=device), 4).float()
    accepted, nxt = greedy_accept(p, torch.tensor([[3, 1, 0]], device=device))
    assert accepted.tolist() == [2] and nxt.tolist() == [2]


def test_sample_never_draws_a_zero_probability_token(device):
    g = generator(device, 0)
    probs = torch.zeros(4000, 9, device=device)
    probs[:, [1, 4, 8]] = torch.tensor([1e-30, 0.5, 0.5], device=device)  # a tiny but positive mass on token 1
    probs[::2, 8] = 0.0  # half the rows: token 8 impossible (the last column)
    draws = sample(probs, g)
    assert set(draws.unique().tolist()) <= {1, 4, 8}
    assert (draws[::2] != 8).all()


def test_sample_matches_its_distribution_by_chisquare(device):
    g = torch.Generator().manual_seed(1)
    p = torch.randn(50, generator=g).mul(2).softmax(-1)
    draws = sample(p.to(device).expand(DRAWS, -1), g if device.type == "cpu" else generator(device, 1))
    assert pooled_chisquare(counts_of(draws, 50), p.double().numpy()) > ALPHA


def _multi_draft(p, q, k, seed, device, update=True):
    """Tokens of `multi_draft_accept` for DRAWS rows of K candidates drawn i.i.d. from q."""
    g = generator(device, seed)
    p32, q32 = p.float().to(device).expand(DRAWS, -1), q.float().to(device).expand(DRAWS, -1)
    candidates = sample(q32.unsqueeze(1).expand(-1, k, -1), g)
    if update:
        _, token = multi_draft_accept(p32, candidates, q32, g)
    else:  # broken: every candidate tested against p itself, never against the residual
        a = acceptance_probability(p32.unsqueeze(1).expand(-1, k, -1), candidates, q32.unsqueeze(1).expand(-1, k, -1))
        passed = torch.rand(a.shape, generator=g, device=device) < a
        first = passed.float().argmax(1)
        fallback = sample((p32 - q32).clamp_min(0) + 1e-12 * p32, g)
        token = torch.where(passed.any(1), candidates.gather(1, first.unsqueeze(1)).squeeze(1), fallback)
    return counts_of(token, p.shape[0])


@settings(max_examples=20, deadline=None, derandomize=True)
@given(distributions(), st.integers(1, 5), st.integers(0, 2**16))
def test_multi_draft_output_matches_p(device, pq, k, seed):
    """K i.i.d. candidates under recursive rejection: the token is distributed as p (chi-square, DRAWS rows)."""
    p, q = pq
    assert pooled_chisquare(_multi_draft(p, q, k, seed, device), p.numpy()) > ALPHA


def test_multi_draft_chisquare_has_power_against_skipping_the_residual_update(device):
    g = torch.Generator().manual_seed(1)
    p = torch.randn(12, generator=g).mul(2).softmax(-1)
    q = torch.randn(12, generator=g).mul(2).softmax(-1)
    assert pooled_chisquare(_multi_draft(p, q, 4, 0, device), p.numpy()) > ALPHA
    assert pooled_chisquare(_multi_draft(p, q, 4, 0, device, update=False), p.numpy()) < ALPHA


def test_multi_draft_keeps_the_first_candidate_that_passes(device):
    p = torch.tensor([[0.0, 1.0, 0.0]], device=device)
    q = torch.tensor([[0.5, 0.5, 0.0]], device=device)
    chosen, token = multi_draft_accept(p, torch.tensor([[0, 0, 1]], device=device), q)
    assert chosen.tolist() == [2] and token.tolist() == [1]  # 0 has p = 0: rejected twice
    chosen, token = multi_draft_accept(p, torch.tensor([[0, 0]], device=device), q)
    assert chosen.tolist() == [-1] and token.tolist() == [1]  # none passed: the residual is all on 1


@settings(max_examples=15, deadline=None, derandomize=True)
@given(distributions(), st.integers(1, 4), st.integers(0, 2**16))
def test_multi_draft_with_a_sampled_draft_then_fixed_tokens_matches_p(device, pq, k, seed):
    """The main draft drawn from q, then the k most likely other tokens of q as fixed candidates."""
    p, q = pq
    g = generator(device, seed)
    p32, q32 = p.float().to(device).expand(DRAWS, -1), q.float().to(device).expand(DRAWS, -1)
    draft = sample(q32, g).unsqueeze(1)
    top = q32.scatter(1, draft, -1.0).topk(min(k, p.shape[0] - 1), dim=1).indices
    given = torch.ones(DRAWS, 1 + top.shape[1], dtype=torch.bool, device=device)
    given[:, 0] = False
    _, token = multi_draft_accept(p32, torch.cat([draft, top], 1), q32, g, given)
    assert pooled_chisquare(counts_of(token, p.shape[0]), p.numpy()) > ALPHA
