"""Whole sequences decoded by `ar` and `sjd` follow the exact AR distribution of the toy backbone.

The toy backbone's span distribution is enumerated exactly (V^L sequences). Each configuration
decodes 20,000 rows in one batch (rows advance by different amounts, so holes in the cache are
exercised) and a Pearson chi-square goodness-of-fit test (bins with expected count < 5 pooled)
must not reject at p-value < 1e-3. With 13 configurations a correct sampler fails a run with
probability below 1.3%, and seeds are fixed so the run is reproducible. A deliberately broken
strategy (accepting every draft unverified) must be rejected, showing the test has power.
"""

import attrs
import numpy as np
import pytest
import torch
from test_verify_properties import pooled_chisquare

from pardecode import SamplingConfig, decode
from pardecode.adapters.toy import ToyBackbone
from pardecode.strategies.sjd import SJD

ALPHA = 1e-3
ROWS = 20_000


def empirical_counts(backbone, strategy, sampling, seed=0, profile=None):
    seqs, probs = backbone.exact_distribution("ab", sampling)
    result = decode(backbone, strategy, ["ab"] * ROWS, sampling=sampling, seed=seed, profile=profile)
    v = backbone.vocab_size
    codes = (result.tokens * v ** torch.arange(result.tokens.shape[1] - 1, -1, -1)).sum(1)
    index = (seqs * v ** torch.arange(seqs.shape[1] - 1, -1, -1)).sum(1)
    assert torch.equal(index, torch.arange(len(seqs)))  # itertools.product order = base-V codes
    return np.bincount(codes.numpy(), minlength=len(seqs)), probs.double().numpy(), result


CASES = [
    ("ar", {}, SamplingConfig()),
    ("sjd", {"window": 1}, SamplingConfig()),
    ("sjd", {"window": 2}, SamplingConfig(temperature=0.8, top_k=2)),
    ("sjd", {"window": 3, "init": "repeat"}, SamplingConfig(temperature=0.8, top_k=2)),
    ("sjd", {"window": 6}, SamplingConfig(temperature=1.3)),
    ("sjd", {"window": 3, "init": "repeat"}, SamplingConfig(top_p=0.8)),
    ("sjd", {"window": 4}, SamplingConfig(cfg_scale=2.0, top_k=2)),
    ("sjd", {"window": 3, "coupling": "gumbel"}, SamplingConfig()),
    ("sjd", {"window": 5, "coupling": "gumbel", "init": "repeat"}, SamplingConfig(temperature=0.7, top_k=2)),
    ("ar", {}, SamplingConfig(cfg_scale=2.0, top_k=2)),
]


@pytest.mark.parametrize("name,options,sampling", CASES)
def test_free_sequences_match_exact_ar(name, options, sampling):
    backbone = ToyBackbone(vocab_size=3, length=4, sharpness=1.0, seed=3)
    counts, probs, _ = empirical_counts(backbone, name if not options else SJD(**options), sampling)
    assert pooled_chisquare(counts, probs) > ALPHA


@pytest.mark.parametrize("window,init", [(2, "random"), (5, "repeat")])
def test_grid_sequences_match_exact_ar(window, init):
    # 2 rows of 2 cells over a 4-token vocabulary: offsets 2 and 5 are forced end-of-line, 6 end
    backbone = ToyBackbone(vocab_size=4, grid=(2, 2), sharpness=1.0, seed=5)
    counts, probs, result = empirical_counts(backbone, SJD(window=window, init=init), SamplingConfig())
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA


def test_ar_greedy_is_the_most_likely_path():
    backbone = ToyBackbone(vocab_size=3, length=4, seed=3)
    seqs, probs = backbone.exact_distribution("ab", SamplingConfig(temperature=0))
    result = decode(backbone, "ar", ["ab"], sampling=SamplingConfig(temperature=0))
    assert probs.max() == 1 and torch.equal(result.tokens[0], seqs[probs.argmax()])


@attrs.define
class AcceptEverything(SJD):
    """A broken SJD that keeps every draft without verification."""

    name = "broken"

    def accept(self, ctx, drafts, p):
        accepted, nxt = super().accept(ctx, drafts, p)
        return torch.full_like(accepted, drafts.shape[1]), nxt


def test_negative_control_unverified_drafts_are_rejected():
    backbone = ToyBackbone(vocab_size=3, length=4, sharpness=1.0, seed=3)
    counts, probs, _ = empirical_counts(backbone, AcceptEverything(window=2), SamplingConfig())
    assert pooled_chisquare(counts, probs) < ALPHA
