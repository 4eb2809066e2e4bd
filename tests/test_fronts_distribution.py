"""Row-parallel strategies at the exact end of their knob follow the exact AR distribution.

Same method as test_sequence_distribution: the toy's span distribution is enumerated, 20,000 rows
are decoded in one batch with a fixed seed, and a pooled chi-square test must not reject at
p < 1e-3 (a correct sampler fails one such test with probability 1e-3). At the lossy end of the
knob the same test must reject, showing it has the power to see the approximation.
"""

import pytest
import torch
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

from pardecode import SamplingConfig, get_strategy
from pardecode.adapters.toy import ToyBackbone

# 2 rows of 2 cells over 4 tokens: offsets 2 and 5 are forced end-of-line, 6 the end token
GRID = dict(vocab_size=4, grid=(2, 2), sharpness=1.5, seed=5)
# image-only: 2 rows of 3 cells over 3 tokens, nothing else (no end-of-line starts a row)
IMAGE_ONLY = dict(vocab_size=3, grid=(2, 3), image_only=True, sharpness=1.5, seed=5)


@pytest.mark.parametrize(
    "name,options,sampling",
    [
        ("zipar", {"window": 2}, SamplingConfig()),
        ("zipar", {"window": 5}, SamplingConfig(cfg_scale=2.0, top_k=2)),
        ("pjd", {"rows": 1, "window": 2}, SamplingConfig()),
        (
            "pjd",
            {"rows": 1, "window": 3, "coupling": "independent", "init": "random"},
            SamplingConfig(temperature=0.8, top_k=3),
        ),
    ],
)
def test_row_parallel_at_the_exact_knob_matches_exact_ar(name, options, sampling):
    """zipar at window >= cols; pjd at rows=1, which declares itself lossless, so the loop also
    checks every commit's context."""
    backbone = ToyBackbone(**GRID)
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), sampling)
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA


@pytest.mark.parametrize("name,options", [("zipar", {"window": 1}), ("pjd", {"rows": 2, "lag": 1})])
def test_row_parallel_at_the_lossy_knob_is_detected(name, options):
    backbone = ToyBackbone(**GRID)
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), SamplingConfig())
    assert result.forward_passes < backbone.layout().length
    assert pooled_chisquare(counts, probs) < ALPHA


@pytest.mark.parametrize(
    "name,options,sampling",
    [
        ("zipar", {"window": 3}, SamplingConfig()),
        ("zipar", {"window": 4}, SamplingConfig(cfg_scale=2.0, top_k=2)),
        ("pjd", {"rows": 1, "window": 2}, SamplingConfig()),
        (
            "pjd",
            {"rows": 1, "window": 3, "mask": "causal", "coupling": "independent", "init": "random"},
            SamplingConfig(temperature=0.8),
        ),
    ],
)
def test_row_parallel_on_an_image_only_grid_at_the_exact_knob_matches_exact_ar(name, options, sampling):
    """No end-of-line: a row starts from the strategy's own state. At the exact knob it starts only
    once the row above is complete, so no stand-in is fed (pjd rows=1 is checked by the loop too)."""
    backbone = ToyBackbone(**IMAGE_ONLY)
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), sampling)
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA


@pytest.mark.parametrize(
    "name,options",
    [
        ("zipar", {"window": 1}),
        ("zipar", {"window": 2}),
        ("pjd", {"rows": 2, "lag": 1}),
        ("pjd", {"rows": 2, "lag": 1, "mask": "causal"}),
    ],
)
def test_row_parallel_on_an_image_only_grid_at_the_lossy_knob_is_detected(name, options):
    """A row starts before the row above is complete: its first cell reads a stand-in token."""
    backbone = ToyBackbone(**IMAGE_ONLY)
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), SamplingConfig())
    assert backbone.layout().is_valid(result.tokens).all()
    assert result.forward_passes < backbone.layout().length
    assert pooled_chisquare(counts, probs) < ALPHA


TREE_CASES = [
    (dict(vocab_size=3, length=4, sharpness=1.0, seed=3), {"window": 3, "branches": 3, "depth": 1}, SamplingConfig()),
    (
        dict(vocab_size=3, length=4, sharpness=1.0, seed=3),
        {"window": 3, "branches": 3, "depth": 1, "siblings": "sampled"},
        SamplingConfig(),
    ),
    (
        dict(vocab_size=3, length=4, sharpness=1.0, seed=3),
        {"window": 2, "branches": 4, "depth": 0},
        SamplingConfig(temperature=0.8, top_k=2),
    ),
    (
        dict(vocab_size=3, length=4, sharpness=1.0, seed=3),
        {"window": 4, "branches": 2, "depth": 3},
        SamplingConfig(cfg_scale=2.0),
    ),
    (GRID, {"window": 3, "branches": 3, "depth": 2}, SamplingConfig()),
    (GRID, {"window": 3, "branches": 5, "depth": 2, "siblings": "sampled"}, SamplingConfig()),
    (GRID, {"window": 1, "branches": 2}, SamplingConfig(top_p=0.9)),
]


@pytest.mark.parametrize("toy,options,sampling", TREE_CASES)
def test_draft_tree_matches_exact_ar(toy, options, sampling):
    """sjd_pac_tree is lossless: several candidates for one offset under a tree mask, each branch
    verified against its own prefix; the loop also checks every commit's context."""
    backbone = ToyBackbone(**toy)
    counts, probs, result = empirical_counts(backbone, get_strategy("sjd_pac_tree", **options), sampling)
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA


def test_draft_tree_with_candidates_from_another_q_is_detected():
    """Negative control: siblings that are always token 0, verified as if drawn from q, break exactness
    (verified as the fixed tokens they are, they would not)."""
    from pardecode.strategies.sjd_pac_tree import SJDPACTree

    class Fixed(SJDPACTree):
        def _siblings(self, ctx):
            return torch.zeros(ctx.batch, self.branches - 1, dtype=torch.long)

    backbone = ToyBackbone(vocab_size=3, length=4, sharpness=1.0, seed=3)
    counts, probs, _ = empirical_counts(
        backbone, Fixed(window=3, branches=4, depth=1, siblings="sampled"), SamplingConfig()
    )
    assert pooled_chisquare(counts, probs) < ALPHA
