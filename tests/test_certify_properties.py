"""Property tests on random reference backbones (`pardecode.testing.hypothesis`), derandomised.

The statistical property runs 4 examples of 2000 rows per run, each a certification at family-wise
false-alarm rate 1e-3: a correct sampler fails it with probability below 0.4%, and never twice since
the examples and seeds are fixed.
"""

import attrs
from hypothesis import given, settings

from pardecode import decode, get_strategy
from pardecode.testing import check_exact, check_greedy
from pardecode.testing.hypothesis import reference_backbones, sampling_configs


@settings(max_examples=25, deadline=None, derandomize=True)
@given(reference_backbones(max_sequences=5000), sampling_configs())
def test_the_exact_distribution_is_normalised_and_keeps_the_layout(reference, sampling):
    probs = reference.exact(reference.prompts[0], sampling)
    seqs, _ = reference.backbone.exact_distribution(reference.prompts[0], sampling)
    valid = reference.backbone.layout().is_valid(seqs).numpy()
    assert abs(probs.sum() - 1) < 1e-9 and (probs[~valid] == 0).all() and (probs[valid] > 0).any()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(reference_backbones(max_sequences=5000), sampling_configs(greedy=True))
def test_at_temperature_0_the_exact_distribution_is_greedy_ar(reference, sampling):
    probs = reference.exact(reference.prompts[0], sampling)
    tokens = decode(reference.backbone, "ar", [reference.prompts[0]], sampling=sampling).tokens
    assert probs.max() == 1 and probs[reference.codes(tokens)[0]] == 1


@settings(max_examples=10, deadline=None, derandomize=True)
@given(reference_backbones())
def test_exact_strategies_equal_greedy_ar_on_random_backbones(reference):
    strategies = (("sjd", {"window": 3}), ("sjd2", {"window": 2}), ("sjd_pac_tree", {"window": 3, "branches": 2}))
    for name, options in strategies:
        report = check_greedy(get_strategy(name, **options), references=[reference])
        assert report.checks and not report.deviation_detected, report.table()


@settings(max_examples=4, deadline=None, derandomize=True)
@given(reference_backbones(max_sequences=2000), sampling_configs())
def test_sjd_is_certified_on_random_backbones_and_settings(reference, sampling):
    reference = attrs.evolve(reference, settings=(sampling,))
    report = check_exact(get_strategy("sjd", window=2), samples=2000, single=0, greedy=False, references=[reference])
    assert report.tests and not report.deviation_detected, report.table()
