"""The automatic draft tree: shapes chosen per pass from placed-pass costs and calibrated shapes,
drafts cut or extended as the window changes, and exactness with the shape changing mid-decode.

The exactness tests use the method and threshold of tests/test_sequence_distribution.py: the toy's
span distribution is enumerated, 20,000 rows are decoded in one batch with a fixed seed, and a
pooled chi-square test must not reject at p < 1e-3 (these 3 configurations add < 0.3% to the
chance that a correct sampler fails a run).
"""

import attrs
import pytest
import torch
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

from pardecode import SamplingConfig, decode, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core import windows
from pardecode.core.cost import CostProfile
from pardecode.core.windows import Shape, WindowPlanner
from pardecode.strategies.sjd_pac_tree import TREE_SHAPES, SJDPACTree, shape_key, tree_positions

KEY = {"backbone": "toy"}
TOY = dict(vocab_size=3, length=5, sharpness=1.0, seed=3)
# shapes that fit the toy's 5-token span, cycled by pass number: every change of window cuts or extends
SCHEDULE = ((3, 3, 1), (1, 1, 0), (2, 2, 1), (3, 1, 0), (1, 2, 0), (2, 1, 0))
SMALL = ((1, 1, 0), (2, 2, 1), (3, 1, 0), (3, 3, 1))


class Scheduled(SJDPACTree):
    """The automatic tree with its shape set by pass number (depends on nothing random)."""

    def _choose_shape(self, ctx):
        return SCHEDULE[ctx.step % len(SCHEDULE)]


class Small(SJDPACTree):
    """The automatic tree choosing among two shapes that fit the toy span, recording its choices."""

    def reset(self, ctx):
        super().reset(ctx)
        self.chosen = []

    def candidate_shapes(self):
        return [Shape(shape_key(w, b, d), tree_positions(w, b, d), w) for w, b, d in ((2, 2, 1), (3, 1, 0))]

    def _choose_shape(self, ctx):
        shape = super()._choose_shape(ctx)
        self.chosen.append(shape)
        return shape


def tree_profile(shape_tokens, placed=(1.0, 1.2, 1.45, 2.0, 3.0), tokens=(1.0, 1.9, 2.7, 3.4, 4.0)):
    windows = (0, 1, 2, 4, 8)
    single = [[s * 0.8 for s in placed]]  # single windows cheaper: the planner must read the placed curve
    return CostProfile(dict(KEY), (1,), windows, single, tokens, placed_seconds=[placed], shape_tokens=shape_tokens)


# at scale 1 (3, 1, 0) is best by a hair; more acceptance than calibrated tips it to the siblings
TIPPING = {
    shape_key(1, 1, 0): 1.6,
    shape_key(2, 2, 1): 2.85,
    shape_key(3, 1, 0): 2.5,
    shape_key(3, 3, 1): 3.2,
}


# calibrated low: the toy's passes commit more, and after the first pass the siblings win
LOW = {shape_key(3, 1, 0): 1.3, shape_key(2, 2, 1): 1.5}


def test_placed_passes_are_costed_by_positions_and_old_profiles_fall_back():
    p = tree_profile({})
    assert p.placed_pass_seconds(1, 5) == pytest.approx(2.0)  # 5 positions: a window of 4 drafts' column
    assert p.placed_pass_seconds(1, 4) == pytest.approx(1.725)
    old = CostProfile(dict(KEY), (1,), (0, 1, 2, 4, 8), p.seconds, p.tokens)  # stored before placed curves
    assert old.placed_pass_seconds(1, 5) == pytest.approx(old.pass_seconds(1, 4))
    assert old.merged(p).placed_seconds == p.placed_seconds
    two = attrs.evolve(p, batches=(2,))
    assert p.merged(attrs.evolve(two, placed_seconds=())).placed_seconds == ()  # a curve for every batch, or none
    assert p.scaled(2.0, 3).placed_pass_seconds(1, 5) == pytest.approx(4.0)
    with pytest.raises(Exception, match="placed-pass times"):
        attrs.evolve(p, placed_seconds=[[1.0]])


def test_the_planner_weighs_shapes_by_placed_cost_and_corrected_tokens():
    shapes = [Shape(shape_key(w, b, d), tree_positions(w, b, d), w) for w, b, d in SMALL]
    planner = WindowPlanner(tree_profile(TIPPING))
    assert planner.choose_shape(1, shapes).key == shape_key(3, 1, 0)
    for _ in range(windows.WARMUP_PASSES + 40):  # rows commit far more than calibrated
        planner.choose_shape(1, shapes)
        planner.update_shaped([5, 5], [True, True])
    assert planner.scale > 1.5 and planner.choose_shape(1, shapes).key == shape_key(2, 2, 1)
    uncalibrated = WindowPlanner(tree_profile({}))  # no shape calibration: the main chain's window's tokens
    assert uncalibrated.shape_extra(shapes[2]) == pytest.approx(uncalibrated.profile.tokens_per_pass(3) - 1)


def test_candidate_shapes_stay_within_the_caps():
    assert [s.key for s in SJDPACTree(window="auto").candidate_shapes()] == [shape_key(*s) for s in TREE_SHAPES]
    capped = SJDPACTree(window="auto", branches=2, depth=2).candidate_shapes()
    assert capped and all(int(s.key.split("x")[1]) <= 2 and int(s.key.split("x")[2]) <= 2 for s in capped)
    assert {s.key.split(":")[1] for s in SJDPACTree(window="auto", branches=1).candidate_shapes()} == {
        "4x1x0",
        "8x1x0",
        "16x1x0",
        "32x1x0",
    }
    assert SJDPACTree(window="auto").auto_sized() and not SJDPACTree().auto_sized()


@pytest.mark.parametrize(
    "options,sampling",
    [({}, SamplingConfig()), ({"siblings": "sampled"}, SamplingConfig(temperature=0.8, top_k=2))],
)
def test_a_tree_reshaped_every_pass_matches_exact_ar(options, sampling):
    """Window, branches and depth change at every pass: drafts cut, or extended with fresh slots
    drafted from the last pass's furthest prediction with that q."""
    backbone = ToyBackbone(**TOY)
    counts, probs, result = empirical_counts(backbone, Scheduled(window="auto", **options), sampling)
    assert len(set(result.trace.widths)) >= 4  # the tree's size really changed during the decode
    assert pooled_chisquare(counts, probs) > ALPHA


def test_the_automatic_tree_reshaped_by_its_planner_matches_exact_ar(monkeypatch):
    """The loop's planner changes the shape mid-decode as the passes it saw commit more than
    calibrated (no warm-up passes, so a 5-token span is long enough to learn from)."""
    monkeypatch.setattr(windows, "WARMUP_PASSES", 0)
    backbone = ToyBackbone(**TOY)
    strategy = Small(window="auto")
    counts, probs, result = empirical_counts(
        backbone, strategy, SamplingConfig(cfg_scale=2.0), profile=tree_profile(LOW)
    )
    assert len(set(strategy.chosen)) >= 2  # the planner changed the shape within the decode
    assert pooled_chisquare(counts, probs) > ALPHA


def test_fixed_shapes_ignore_the_planner_and_the_default_model_decodes_with_an_automatic_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path))
    backbone = ToyBackbone(vocab_size=4, grid=(3, 4), seed=1)
    fixed = decode(backbone, "sjd_pac_tree", ["ab"], seed=2, strategy_options={"window": 3, "branches": 2})
    planned = decode(
        backbone,
        "sjd_pac_tree",
        ["ab"],
        seed=2,
        strategy_options={"window": 3, "branches": 2},
        profile=tree_profile({}),
    )
    assert torch.equal(fixed.tokens, planned.tokens) and fixed.trace.widths == planned.trace.widths
    auto = decode(backbone, get_strategy("sjd_pac_tree", window="auto"), ["ab", "cd"], seed=0)
    assert auto.trace.placed and backbone.layout().is_valid(auto.tokens).all()


def test_the_default_model_ships_placed_costs_and_every_tree_shape_calibrated():
    from pardecode import get_backbone

    prior = get_backbone("fashion").cost_prior()
    assert len(prior.placed_seconds) == len(prior.batches)
    assert set(prior.shape_tokens) == {shape_key(*s) for s in TREE_SHAPES}
    assert all(
        1.0 < t <= 1 + s[0] for s, t in zip(TREE_SHAPES, (prior.shape_tokens[shape_key(*s)] for s in TREE_SHAPES))
    )


def test_the_default_chooser_weighs_the_automatic_tree_where_its_shapes_are_calibrated():
    from pardecode import get_backbone
    from pardecode.planning import fastest_exact

    windows = (0, 1, 2, 4, 8, 16, 32, 64)
    base = CostProfile(
        dict(KEY), (1,), windows, [[1.0 + w / 8 for w in windows]], [1.0 + 0.2 * min(w, 4) for w in windows]
    )
    assert fastest_exact(base, 1).label != "sjd_pac_tree"  # no shape calibrated: never weighed
    cheap = attrs.evolve(
        base, placed_seconds=base.seconds, shape_tokens={shape_key(*s): 1.0 + s[0] / 2 for s in TREE_SHAPES}
    )
    choice = fastest_exact(cheap, 1)
    assert choice.label == "sjd_pac_tree" and choice.strategy.window == "auto" and choice.strategy.auto_sized()
    prior = get_backbone("fashion").cost_prior()  # the default model: sjd_pac predicted faster at every batch
    assert all(fastest_exact(prior, rows).label == "sjd_pac" for rows in (1, 2, 4, 8))
