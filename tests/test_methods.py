"""The strategies from the literature: exact ones follow AR's sequence distribution, lossy ones
reach it at the exact end of their knob, and report how far from it they may be.

Statistical tests as in test_sequence_distribution: 20,000 rows per configuration in one batch on
the toy backbone (whose span distribution is enumerated exactly), Pearson chi-square with bins of
expected count < 5 pooled, rejecting at p-value < 1e-3. 16 tests must not reject (12 decoding
configurations, 4 one-slot checks of the primitives: a correct sampler fails a run with probability
below 1.6%); 4 must reject (power: the lossy rules at a strong setting, and draft reuse with the
naive draft distribution instead of the exact mixture, are told apart from AR at this sample size). Seeds are fixed,
so the run is reproducible. The toy gets a random 2-D "codebook" so latent neighbourhoods exist.
"""

import attrs
import numpy as np
import pytest
import torch
from scipy import stats
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

from pardecode import ConfigError, SamplingConfig, decode, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.verify import exact_acceptance, maximal_redraw, relaxed_accept
from pardecode.strategies.sjd_reuse import SJDReuse


class CodebookToy(ToyBackbone):
    def image_codebook(self):
        g = torch.Generator().manual_seed(7)
        return torch.arange(self.vocab_size), torch.randn(self.vocab_size, 2, generator=g)


def toy(grid=False, noise=False):
    kw = {"grid": (2, 2), "vocab_size": 4} if grid else {"length": 4, "vocab_size": 3}
    return CodebookToy(sharpness=1.0, seed=3, **({"noise_dim": 4} if noise else {}), **kw)


EXACT = [
    # maximal coupling of redraws
    ("sjd", {"window": 3, "coupling": "maximal"}, SamplingConfig(), False),
    ("sjd", {"window": 5, "coupling": "maximal", "init": "repeat"}, SamplingConfig(temperature=0.8, top_k=2), True),
    ("sjd2", {"window": 4, "steps": 2, "coupling": "maximal"}, SamplingConfig(), False),
    # SJD-PAC (one-window part)
    ("sjd_pac", {"window": 3}, SamplingConfig(), False),
    ("sjd_pac", {"window": 5}, SamplingConfig(cfg_scale=2.0, top_k=2), True),
    ("sjd_pac", {"window": 4, "coupling": "independent"}, SamplingConfig(top_p=0.8), False),
    # draft reuse
    ("sjd_reuse", {"window": 3, "threshold": 0.3}, SamplingConfig(), False),
    ("sjd_reuse", {"window": 5, "threshold": 0.5}, SamplingConfig(temperature=0.7), True),
    # lossy rules at the exact end of their knob
    ("lantern", {"window": 4, "delta": 0.0}, SamplingConfig(), False),
    ("gsd", {"window": 4, "k": 0}, SamplingConfig(), True),
    ("entropy_sd", {"window": 4, "strength": 0.0}, SamplingConfig(), False),
    ("entropy_sd", {"window": 3, "strength": 0.0, "coupling": "maximal"}, SamplingConfig(temperature=1.3), True),
]


@pytest.mark.parametrize("name,options,sampling,grid", EXACT)
def test_exact_strategies_match_ar(name, options, sampling, grid):
    backbone = toy(grid, noise=name == "sjd2")
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), sampling)
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA
    if "tv_bound" in result.trace.diagnostics:  # the exact end reports a zero distance
        assert float(result.trace.diagnostics["tv_bound"].abs().max()) < 1e-5


@attrs.define
class NaiveReuse(SJDReuse):
    """Broken draft reuse: a reused draft keeps the distribution it was first drawn from as its q."""

    name = "naive_reuse"

    def redraft(self, ctx, outputs, p, accepted, next_token):
        width = self.drafts.shape[1]
        old_q = torch.nn.functional.one_hot(self.drafts, ctx.vocab_size).to(p.dtype) if self.q is None else self.q
        reused = (outputs[:, :width] == self.drafts) & (
            p[:, :width].gather(-1, self.drafts.unsqueeze(-1)).squeeze(-1) >= self.threshold
        )
        self._mix = torch.cat([torch.where(reused.unsqueeze(-1), old_q, p[:, :width]), p[:, width:]], 1)
        return super().redraft(ctx, outputs, p, accepted, next_token)


def test_negative_control_reuse_needs_the_mixture_distribution():
    counts, probs, _ = empirical_counts(toy(), NaiveReuse(window=3, threshold=0.3), SamplingConfig())
    assert pooled_chisquare(counts, probs) < ALPHA


LOSSY = [
    ("lantern", {"window": 4, "delta": 0.5, "k": 2}),
    ("gsd", {"window": 4, "k": 2, "candidates": 3}),
    ("entropy_sd", {"window": 4, "strength": 4.0}),
]


@pytest.mark.parametrize("name,options", LOSSY)
def test_lossy_strategies_away_from_exact_differ_and_say_so(name, options):
    backbone = toy()
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), SamplingConfig())
    assert pooled_chisquare(counts, probs) < ALPHA
    tv = result.trace.diagnostics["tv_bound"]
    assert tv.shape == result.trace.committed.shape and float(tv.sum()) > 0
    # the reported bound holds: the empirical TV of the sequences is below the mean summed bound
    empirical_tv = 0.5 * np.abs(counts / counts.sum() - probs).sum()
    assert empirical_tv <= float(tv.sum(0).mean()) + 0.02  # 0.02: sampling error of the empirical TV


def test_relaxed_tv_is_the_tv_of_what_it_commits():
    """One slot: the committed token's empirical distribution matches q*a + (1 - sum q*a) * residual,
    whose TV from p the rule reports (chi-square at 1e-3 on 20,000 draws)."""
    g = torch.Generator().manual_seed(0)
    n, v = 20_000, 6
    p = torch.softmax(torch.randn(v, generator=g) * 2, -1)
    q = torch.softmax(torch.randn(v, generator=g), -1)
    a = (exact_acceptance(p, q) + 0.4).clamp(max=1)  # relaxed
    drafts = torch.multinomial(q, n, replacement=True, generator=g).unsqueeze(1)
    P = torch.stack([p, p]).expand(n, 2, v)
    accepted, nxt, tv = relaxed_accept(P, drafts, q.expand(n, 1, v), a.expand(n, 1, v), g)
    out = torch.where(accepted == 1, drafts[:, 0], nxt)
    kept = q * a
    residual = (p - kept).clamp_min(0)
    expected = kept + (1 - kept.sum()) * residual / residual.sum()
    assert pooled_chisquare(np.bincount(out.numpy(), minlength=v), expected.double().numpy()) > ALPHA
    assert torch.allclose(tv[:, 0], 0.5 * (expected - p).abs().sum(), atol=1e-5)
    assert float(tv[0, 0]) > 0.01 and float(tv[:, 1].abs().max()) == 0


def test_maximal_redraw_keeps_p_and_stays_put_as_often_as_possible():
    g = torch.Generator().manual_seed(1)
    n, v = 20_000, 5
    p = torch.softmax(torch.randn(v, generator=g) * 2, -1)
    q = torch.softmax(torch.randn(v, generator=g), -1)
    previous = torch.multinomial(q, n, replacement=True, generator=g).unsqueeze(1)
    out = maximal_redraw(p.expand(n, 2, v), previous, q.expand(n, 1, v), g)
    assert pooled_chisquare(np.bincount(out[:, 0].numpy(), minlength=v), p.double().numpy()) > ALPHA
    assert pooled_chisquare(np.bincount(out[:, 1].numpy(), minlength=v), p.double().numpy()) > ALPHA
    # P(stay) = sum min(p, q): a two-sided binomial test at 1e-3
    stay = int((out[:, 0] == previous[:, 0]).sum())
    assert stats.binomtest(stay, n, float(torch.minimum(p, q).sum())).pvalue > ALPHA


def test_neighbourhood_rules_need_a_codebook_and_knobs_are_checked():
    plain = ToyBackbone(vocab_size=3, length=4, seed=3)
    with pytest.raises(ConfigError, match="codebook"):
        decode(plain, "lantern", ["ab"], sampling=SamplingConfig(), strategy_options={"delta": 0.2})
    for name, bad in (
        ("lantern", {"delta": -1}),
        ("gsd", {"k": -1}),
        ("entropy_sd", {"strength": "x"}),
        ("sjd_reuse", {"threshold": 0}),
        ("sjd_reuse", {"coupling": "gumbel"}),
        ("sjd", {"coupling": "max"}),
    ):
        with pytest.raises(ConfigError):
            get_strategy(name, **bad)
    assert not get_strategy("lantern").lossless and get_strategy("sjd_pac").lossless


def test_backbones_expose_their_image_codebook_once():
    import tiny_models

    from pardecode import get_backbone
    from pardecode.core.neighbours import neighbours

    fashion = get_backbone("fashion")
    ids, table = fashion.image_codebook()
    assert torch.equal(ids, fashion.image_tokens) and table.shape == (len(ids), 4)  # 2x2 pixel patches
    assert fashion.image_codebook()[1] is table  # computed once
    index, valid = neighbours(fashion.image_codebook, fashion.vocab_size, 3, torch.device("cpu"), "test")
    assert valid[ids].all() and not valid[: int(ids.min())].any()
    dist = torch.cdist(table, table)
    nearest = ids[dist[0].argsort()[1]]  # the first image token's nearest other entry
    assert int(index[ids[0], 0]) == int(nearest)
    assert neighbours(fashion.image_codebook, fashion.vocab_size, 3, torch.device("cpu"), "test")[0] is index
    for family in ("emu3", "janus"):
        bb = tiny_models.backbone(family)
        ids, table = bb.image_codebook()
        assert len(ids) == len(bb.image_tokens) and set(ids.tolist()) == set(bb.image_tokens.tolist())
    assert ToyBackbone(vocab_size=3, length=4).image_codebook() is None
