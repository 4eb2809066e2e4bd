"""Automatic windows: the cost profile, the acceptance estimate, the planner, and exactness."""

import json

import numpy as np
import pytest
import torch

from pardecode import SamplingConfig, decode, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.cost import CostProfile, measure, profile_for, profile_key
from pardecode.core.windows import AcceptanceStats, WindowPlanner
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

KEY = {"backbone": "toy", "model": "", "device": "cpu", "dtype": "float32", "threads": 1,
       "guidance": False, "start": "{}", "pardecode": "0"}


def profile(seconds, windows=(0, 1, 2, 4, 8), batches=(1,), acceptance=(0.5,)):
    return CostProfile(dict(KEY), batches, windows, seconds, acceptance)


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


def test_expected_tokens_is_one_plus_the_mean_accepted_run_capped_at_the_window():
    rates = [0.9, 0.6, 0.3, 0.8]
    stats = AcceptanceStats(rates, weight=1.0)
    survival = np.cumprod(rates)  # P(at least j drafts accepted)
    for w in range(5):
        assert stats.expected_tokens(4)[w] == pytest.approx(1 + survival[:w].sum())


def test_only_drafts_the_previous_pass_refined_count():
    stats = AcceptanceStats(weight=0.0)
    stats.update([0, 0], 4, [True, True])  # first pass: every draft fresh, nothing learnt
    assert stats.reached.sum() == 0
    # row 0 kept 1 of 4 last time: slots 0..2 are carried over; row 1 kept 3: slot 0 only
    stats._refined = [3, 1]
    stats.update([4, 4], 4, [True, True])  # a pass counts once: rows are averaged
    assert stats.reached.tolist() == [1, 0.5, 0.5, 0] and stats.kept.tolist() == [1, 0.5, 0.5, 0]
    assert stats._refined == [0, 0]  # every draft was kept: the next window is all fresh
    stats._refined = [4, 4]
    stats.update([2, 0], 4, [True, False])  # finished rows do not count
    assert stats.reached.tolist() == [2, 1.5, 1.5, 0]


def test_planner_picks_ar_when_windows_are_dear_and_wide_windows_when_cheap():
    sure = [0.95] * 8
    dear = WindowPlanner.for_profile(profile([[1.0, 3.0, 5.0, 9.0, 17.0]], acceptance=sure))
    cheap = WindowPlanner.for_profile(profile([[1.0, 1.01, 1.02, 1.04, 1.08]], acceptance=sure))
    assert dear.choose(rows=4, widest=8) == 0
    assert cheap.choose(rows=4, widest=8) == 8
    assert cheap.choose(rows=4, widest=3) == 3  # never past the strategy's widest


# a profile under which the best window moves with the acceptance seen so far
SWINGING = profile([[1.0, 1.2, 1.45, 2.0, 3.0]], acceptance=[0.9] * 8)


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


def test_a_decode_measures_the_profile_once_then_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path))
    backbone = ToyBackbone(vocab_size=4, grid=(4, 6), seed=1)
    first = decode(backbone, "sjd", ["ab", "cd"], seed=0)
    (path,) = (tmp_path / "profiles").glob("*.json")
    stored = json.loads(path.read_text())
    assert stored["batches"] == [1, 2] and stored["key"] == profile_key(backbone, backbone.default_sampling)
    assert first.trace.setup_seconds > 0
    again = decode(backbone, "sjd", ["ab", "cd"], seed=0)
    assert torch.equal(again.tokens, first.tokens) and again.trace.widths == first.trace.widths
    assert json.loads(path.read_text()) == stored  # reused, not measured again
    decode(backbone, "sjd", ["ab", "cd", "ef"], seed=0)  # a new batch size is added to it
    assert json.loads(path.read_text())["batches"] == [1, 2, 3]


def test_measured_costs_never_fall_as_the_window_grows():
    backbone = ToyBackbone(vocab_size=4, grid=(4, 6), seed=1)
    p = measure(backbone, [2], rounds=1, windows=(0, 1, 4, 16))
    assert all(a <= b for a, b in zip(p.seconds[0], p.seconds[0][1:]))
    assert len(p.acceptance) == 16 and all(0 <= a <= 1 for a in p.acceptance)
    assert profile_for(backbone, backbone.default_sampling, 2).batches == (1, 2)


def test_increasing_fit_is_the_closest_non_decreasing_curve():
    from pardecode.core.cost import increasing_fit

    assert increasing_fit([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    assert increasing_fit([1.0, 5.0, 3.0, 4.0]) == [1.0, 4.0, 4.0, 4.0]  # one outlier pooled, not propagated
    assert increasing_fit([3.0, 1.0]) == [2.0, 2.0]
