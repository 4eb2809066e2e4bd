"""Automatic windows: the cost profile, the acceptance estimate, the planner, and exactness."""

import json

import attrs
import pytest
import torch
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

from pardecode import SamplingConfig, decode, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.cost import CostProfile
from pardecode.core.windows import WARMUP_PASSES, WindowPlanner
from pardecode.planning import EXACT_SETTINGS, GENERIC_PRIOR, WINDOWS, measure, profile_for, profile_key

KEY = {
    "backbone": "toy",
    "model": "",
    "device": "cpu",
    "dtype": "float32",
    "threads": 1,
    "guidance": False,
    "start": "{}",
    "pardecode": "0",
}


def profile(seconds, windows=(0, 1, 2, 4, 8), batches=(1,), tokens=(1.0, 1.5, 1.9, 2.4, 2.8)):
    return CostProfile(dict(KEY), batches, windows, seconds, tokens)


def test_profile_interpolates_between_and_beyond_its_measurements():
    p = profile([[1.0, 2.0, 3.0, 5.0, 9.0], [2.0, 4.0, 6.0, 10.0, 18.0]], batches=(1, 3))
    assert p.pass_seconds(1, 4) == 5.0 and p.pass_seconds(3, 0) == 2.0
    assert p.pass_seconds(1, 3) == pytest.approx(4.0)  # halfway between windows 2 and 4
    assert p.pass_seconds(2, 2) == pytest.approx(4.5)  # halfway between batches 1 and 3
    assert p.pass_seconds(1, 16) == pytest.approx(17.0)  # the last slope carries on
    with pytest.raises(Exception, match="one time per batch and window"):
        profile([[1.0, 2.0]])


def test_profile_round_trips_and_ignores_foreign_or_broken_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path))
    p = profile([[1.0, 2.0, 3.0, 5.0, 9.0]])
    path = p.save()
    assert CostProfile.load(dict(KEY)) == p
    assert CostProfile.load(dict(KEY, threads=2)) is None  # another key: another file
    path.write_text("{not json")
    assert CostProfile.load(dict(KEY)) is None  # measured again rather than trusted


def test_the_online_correction_scales_the_calibrated_extra_tokens():
    planner = WindowPlanner(profile([[1.0, 2.0, 3.0, 5.0, 9.0]], tokens=[1.0, 1.5, 2.0, 2.5, 3.0]))
    assert planner.expected_tokens(4) == pytest.approx(2.5)  # before any pass: the calibration
    for _ in range(WARMUP_PASSES):
        planner.update([3, 3], 4, [True, True])
    assert planner.expected_tokens(4) == pytest.approx(2.5)  # warm-up passes do not count
    for _ in range(16):  # as many passes as the prior: each kept 3 extra where 1.5 were expected
        planner.update([3, 3, 0], 4, [True, True, False])  # finished rows do not count
    assert planner.scale == pytest.approx((16 + 16 * 3) / (16 + 16 * 1.5))
    assert planner.expected_tokens(2) == pytest.approx(1 + planner.scale * 1.0)
    planner.update([0, 0], 0, [True, True])  # an AR pass teaches nothing
    assert planner.passes == WARMUP_PASSES + 16


def test_planner_picks_ar_when_windows_are_dear_and_wide_windows_when_cheap():
    sure = [1.0, 1.95, 2.9, 4.8, 8.5]
    dear = WindowPlanner(profile([[1.0, 3.0, 5.0, 9.0, 17.0]], tokens=sure))
    cheap = WindowPlanner(profile([[1.0, 1.01, 1.02, 1.04, 1.08]], tokens=sure))
    assert dear.choose(rows=4, widest=8) == 0
    assert cheap.choose(rows=4, widest=8) == 8
    assert cheap.choose(rows=4, widest=3) == 3  # never past the strategy's widest


# a profile under which the best window moves with the acceptance seen so far
SWINGING = profile([[1.0, 1.2, 1.45, 2.0, 3.0]], tokens=[1.0, 1.9, 2.7, 3.4, 4.0])


@pytest.mark.parametrize(
    "options,sampling",
    [
        ({"window": "auto"}, SamplingConfig()),
        ({"window": "auto", "coupling": "gumbel"}, SamplingConfig(temperature=0.8, top_k=2)),
        ({"window": "auto", "init": "repeat"}, SamplingConfig(cfg_scale=2.0)),
    ],
)
def test_auto_window_sequences_match_exact_ar(options, sampling):
    """The chi-square test and threshold of tests/test_sequence_distribution.py (p < 1e-3 rejects;
    with its 13 configurations and these 3, a correct sampler fails a run with probability < 1.6%)."""
    backbone = ToyBackbone(vocab_size=3, length=5, sharpness=1.0, seed=3)
    strategy = get_strategy("sjd", **options)
    counts, probs, result = empirical_counts(backbone, strategy, sampling, profile=SWINGING)
    assert len(set(result.trace.widths)) >= 3  # the window really changed during the decode
    assert pooled_chisquare(counts, probs) > ALPHA


def test_auto_window_jacobi_is_greedy_ar():
    greedy = SamplingConfig(temperature=0)
    for seed in range(4):
        backbone = ToyBackbone(vocab_size=5, grid=(3, 6), seed=seed, sharpness=3.0)
        prompts = ["abc", "x", "hello"]
        ar = decode(backbone, "ar", prompts, sampling=greedy)
        jac = decode(backbone, "jacobi", prompts, sampling=greedy, seed=seed, profile=SWINGING)
        assert torch.equal(jac.tokens, ar.tokens)


def test_a_first_decode_starts_from_a_prior_then_rescales_and_stores_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path))
    backbone = ToyBackbone(vocab_size=4, grid=(4, 6), seed=1)
    first = decode(backbone, "sjd", ["ab", "cd"], seed=0)
    assert first.trace.setup_seconds < 1.0  # nothing measured: the generic prior, keyed to this machine
    (path,) = (tmp_path / "profiles").glob("*.json")
    stored = CostProfile(**json.loads(path.read_text()))
    assert stored.is_prior and stored.key == profile_key(backbone, backbone.default_sampling)
    assert stored.observed == first.forward_passes - 1  # rescaled by the passes it saw (the first excluded)
    assert stored.tokens == GENERIC_PRIOR.tokens
    ratios = {a / b for row, prior in zip(stored.seconds, GENERIC_PRIOR.seconds) for a, b in zip(row, prior)}
    assert max(ratios) == pytest.approx(min(ratios))  # one scale for every cell: the prior's shape kept
    assert max(ratios) < 1e-2  # the toy's pass takes far less than the prior's unit
    again = decode(backbone, "sjd", ["ab", "cd"], seed=0)  # reads the stored, rescaled prior
    assert json.loads(path.read_text())["observed"] == stored.observed + again.forward_passes - 1
    measured = profile_for(backbone, backbone.default_sampling, 2, measure_missing=True)
    assert not measured.is_prior and measured.batches == (1, 2)  # a measurement replaces the prior
    assert CostProfile(**json.loads(path.read_text())) == measured
    decode(backbone, "sjd", ["ab", "cd"], seed=0)
    assert CostProfile(**json.loads(path.read_text())) == measured  # a measured profile is not rescaled


def test_a_backbone_shipping_a_prior_starts_from_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path))
    backbone = ToyBackbone(vocab_size=4, grid=(4, 6), seed=1)
    shipped = profile([[1.0, 1.2, 1.45, 2.0, 3.0]], tokens=[1.0, 1.9, 2.7, 3.4, 4.0])
    monkeypatch.setattr(backbone, "cost_prior", lambda: attrs.evolve(shipped, key={}, source="prior"), raising=False)
    found = profile_for(backbone, backbone.default_sampling, 2)
    assert (
        found.is_prior
        and found.tokens == shipped.tokens
        and found.key == profile_key(backbone, backbone.default_sampling)
    )


def test_the_default_model_ships_a_prior_covering_its_auto_windows():
    from pardecode import get_backbone

    prior = get_backbone("fashion").cost_prior()
    assert prior is not None and prior.is_prior and prior.windows == WINDOWS and prior.tokens
    assert {1, 8} <= set(prior.batches)


def test_measured_costs_never_fall_as_the_window_grows():
    backbone = ToyBackbone(vocab_size=4, grid=(4, 6), seed=1)
    p = measure(backbone, [2], rounds=1, windows=(0, 1, 4, 16))
    assert all(a <= b for a, b in zip(p.seconds[0], p.seconds[0][1:]))
    assert p.tokens[0] == 1.0 and all(1 <= t <= 1 + w for t, w in zip(p.tokens, p.windows))
    assert set(p.tokens_by) == set(EXACT_SETTINGS)  # every setting a decode may choose is calibrated
    assert all(c[0] == 1.0 and all(1 <= t <= 1 + w for t, w in zip(c, p.windows)) for c in p.tokens_by.values())
    assert profile_for(backbone, backbone.default_sampling, 2, measure_missing=True).batches == (1, 2)


def test_increasing_fit_is_the_closest_non_decreasing_curve():
    from pardecode.core.cost import increasing_fit

    assert increasing_fit([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    assert increasing_fit([1.0, 5.0, 3.0, 4.0]) == [1.0, 4.0, 4.0, 4.0]  # one outlier pooled, not propagated
    assert increasing_fit([3.0, 1.0]) == [2.0, 2.0]


def test_compile_wraps_the_forward_and_decodes_the_same(monkeypatch):
    import tiny_models

    from pardecode.cli import main

    wrapped = []

    def fake_compile(fn, **options):  # the real one takes tens of seconds: the wiring is what is tested
        wrapped.append(options)
        return lambda *a, **k: fn(*a, **k)

    monkeypatch.setattr(torch, "compile", fake_compile)
    bb = tiny_models.backbone("chameleon")
    greedy = SamplingConfig(temperature=0)
    before = decode(
        bb, "sjd", ["a", "b"], sampling=greedy, size=tiny_models.SMALL_SIZE["chameleon"], strategy_options={"window": 4}
    )
    bb.compile()
    after = decode(
        bb, "sjd", ["a", "b"], sampling=greedy, size=tiny_models.SMALL_SIZE["chameleon"], strategy_options={"window": 4}
    )
    del bb.body.forward, bb.body._pardecode_cache_keyword  # the tiny backbone is shared with other tests
    assert wrapped == [{"dynamic": True}] and torch.equal(before.tokens, after.tokens)
    assert main(["generate", "--backbone", "toy", "--prompt", "ab", "--compile", "--strategy", "ar"]) == 2


def test_calibration_decodes_one_row_per_calibration_prompt(monkeypatch, tmp_path):
    from pardecode import planning as cost

    bb = ToyBackbone(vocab_size=4, length=6, seed=0)
    assert cost.calibration_rows(bb) == [bb.example_prompt] * cost.CALIBRATION_ROWS
    assert cost.calibration_rows(bb, "xy") == ["xy"] * cost.CALIBRATION_ROWS
    monkeypatch.setattr(bb, "calibration_prompts", ("a", "b", "c"), raising=False)
    assert cost.calibration_rows(bb) == ["a", "b", "c"]
    seen = []
    real = cost.calibrate
    monkeypatch.setattr(
        cost,
        "calibrate",
        lambda backbone, strategy, prompts, *rest: seen.append(prompts) or real(backbone, strategy, prompts, *rest),
    )
    measure(bb, [1], windows=(0, 2), rounds=1)
    # the reference SJD, then each setting, then each shape of the automatic tree (the toy scores placed slots)
    assert seen == [["a", "b", "c"]] * (1 + len(cost.EXACT_SETTINGS) + len(cost.TREE_SHAPES))


def test_a_profile_of_another_calibration_revision_is_measured_again(monkeypatch, tmp_path):
    from pardecode import planning as cost

    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path))
    bb = ToyBackbone(vocab_size=4, length=6, seed=0)
    key = profile_key(bb, SamplingConfig())
    CostProfile({**key, "calibration": cost.CALIBRATION - 1}, [1], [0, 1], [[1.0, 2.0]], [1.0, 1.5]).save()
    assert CostProfile.load(key) is None
