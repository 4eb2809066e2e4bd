"""Row-parallel strategies at the exact end of their knob follow the exact AR distribution.

Same method as test_sequence_distribution: the toy's span distribution is enumerated, 20,000 rows
are decoded in one batch with a fixed seed, and a pooled chi-square test must not reject at
p < 1e-3 (a correct sampler fails one such test with probability 1e-3). At the lossy end of the
knob the same test must reject, showing it has the power to see the approximation.
"""

import pytest

from pardecode import SamplingConfig, get_strategy
from pardecode.adapters.toy import ToyBackbone
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

# 2 rows of 2 cells over 4 tokens: offsets 2 and 5 are forced end-of-line, 6 the end token
GRID = dict(vocab_size=4, grid=(2, 2), sharpness=1.5, seed=5)
# image-only: 2 rows of 3 cells over 3 tokens, nothing else (no end-of-line starts a row)
IMAGE_ONLY = dict(vocab_size=3, grid=(2, 3), image_only=True, sharpness=1.5, seed=5)


@pytest.mark.parametrize("name,options,sampling", [
    ("zipar", {"window": 2}, SamplingConfig()),
    ("zipar", {"window": 5}, SamplingConfig(cfg_scale=2.0, top_k=2)),
    ("pjd", {"rows": 1, "window": 2}, SamplingConfig()),
    ("pjd", {"rows": 1, "window": 3, "coupling": "independent", "init": "random"}, SamplingConfig(temperature=0.8, top_k=3)),
])
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


@pytest.mark.parametrize("name,options,sampling", [
    ("zipar", {"window": 3}, SamplingConfig()),
    ("zipar", {"window": 4}, SamplingConfig(cfg_scale=2.0, top_k=2)),
    ("pjd", {"rows": 1, "window": 2}, SamplingConfig()),
    ("pjd", {"rows": 1, "window": 3, "mask": "causal", "coupling": "independent", "init": "random"}, SamplingConfig(temperature=0.8)),
])
def test_row_parallel_on_an_image_only_grid_at_the_exact_knob_matches_exact_ar(name, options, sampling):
    """No end-of-line: a row starts from the strategy's own state. At the exact knob it starts only
    once the row above is complete, so no stand-in is fed (pjd rows=1 is checked by the loop too)."""
    backbone = ToyBackbone(**IMAGE_ONLY)
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), sampling)
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA


@pytest.mark.parametrize("name,options", [
    ("zipar", {"window": 1}),
    ("zipar", {"window": 2}),
    ("pjd", {"rows": 2, "lag": 1}),
    ("pjd", {"rows": 2, "lag": 1, "mask": "causal"}),
])
def test_row_parallel_on_an_image_only_grid_at_the_lossy_knob_is_detected(name, options):
    """A row starts before the row above is complete: its first cell reads a stand-in token."""
    backbone = ToyBackbone(**IMAGE_ONLY)
    counts, probs, result = empirical_counts(backbone, get_strategy(name, **options), SamplingConfig())
    assert backbone.layout().is_valid(result.tokens).all()
    assert result.forward_passes < backbone.layout().length
    assert pooled_chisquare(counts, probs) < ALPHA
