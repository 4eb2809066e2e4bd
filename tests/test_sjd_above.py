"""`sjd_above`, the worked 2-D drafting strategy: drafts copy the row above, the output stays exact."""

import attrs
import pytest
import torch
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

from pardecode import SamplingConfig, decode, get_backbone, get_strategy, list_plugins
from pardecode.adapters.toy import ToyBackbone
from pardecode.strategies.sjd_above import SJDAbove


@pytest.mark.parametrize(
    "options,sampling",
    [
        ({"window": 2}, SamplingConfig()),  # copies from committed tokens
        ({"window": 5, "init": "repeat"}, SamplingConfig(temperature=0.8, top_k=3)),  # and from carried drafts
        ({"window": 6, "coupling": "gumbel"}, SamplingConfig(cfg_scale=2.0)),
    ],
)
def test_grid_sequences_match_exact_ar(options, sampling):
    # 2 rows of 2 cells over a 4-token vocabulary: offsets 2 and 5 are forced end-of-line, 6 end
    backbone = ToyBackbone(vocab_size=4, grid=(2, 2), sharpness=1.0, seed=5)
    counts, probs, result = empirical_counts(backbone, SJDAbove(**options), sampling)
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA


@attrs.define
class Recording(SJDAbove):
    """sjd_above that records every proposal with the committed count it was made at."""

    log: list = attrs.Factory(list)

    def propose(self, ctx):
        proposal = super().propose(ctx)
        self.log.append((ctx.committed.clone(), proposal.tokens.clone()))
        return proposal


def test_a_fresh_draft_is_the_token_one_row_up():
    # rows of 6 cells + end-of-line: a window of 3 always reaches back past the committed prefix
    backbone = ToyBackbone(vocab_size=6, grid=(5, 6), seed=1)
    strategy = Recording(window=3)
    result = decode(backbone, strategy, ["ab", "c", "d"], seed=0)
    grid, checked = backbone.layout().image_grid(), 0
    for (before, _), (committed, drafts) in zip(strategy.log, strategy.log[1:]):
        # the last slot is fresh when the pass kept a draft (it moved the window by 2 or more)
        last = committed + drafts.shape[1] - 1
        up = grid.above(last)
        for b in range(drafts.shape[0]):
            if drafts.shape[1] == 3 and committed[b] - before[b] >= 2 and up[b] >= 0:
                assert drafts[b, -1] == result.tokens[b, up[b]]
                checked += 1
    assert checked > 20


def test_without_a_grid_it_decodes_as_sjd():
    backbone = ToyBackbone(length=12)
    plain = decode(backbone, "sjd", ["ab", "c"], seed=3, strategy_options={"window": 4})
    above = decode(backbone, "sjd_above", ["ab", "c"], seed=3, strategy_options={"window": 4})
    assert torch.equal(plain.tokens, above.tokens) and plain.trace.widths == above.trace.widths


def test_it_is_registered_and_accepts_more_per_pass_on_the_default_model():
    assert isinstance(get_strategy("sjd_above", window=16), SJDAbove)
    fashion = get_backbone("fashion")
    prompts = ["a sneaker", "a bag", "a dress", "a shirt"]
    above = decode(fashion, "sjd_above", prompts, seed=0, strategy_options={"window": 16})
    plain = decode(fashion, "sjd", prompts, seed=0, strategy_options={"window": 16})
    assert bool(above.session.layout.is_valid(above.tokens).all())
    assert above.trace.tokens_per_pass > plain.trace.tokens_per_pass


def test_its_former_name_and_module_still_work():
    from pardecode.strategies import above
    from pardecode.strategies.relaxed import EntropyAware, EntropySD

    assert above.SJDAbove is SJDAbove and EntropyAware is EntropySD
    assert isinstance(get_strategy("sjd-above", window=4), SJDAbove)
    backbone = ToyBackbone(vocab_size=6, grid=(4, 5), seed=2)
    old = decode(backbone, "sjd-above", ["ab", "c"], seed=3, strategy_options={"window": 4})
    new = decode(backbone, "sjd_above", ["ab", "c"], seed=3, strategy_options={"window": 4})
    assert torch.equal(old.tokens, new.tokens)
    listing = {e["name"]: e for e in list_plugins()["strategies"]}
    assert "sjd-above" not in listing and listing["sjd_above"]["aliases"] == ["sjd-above"]
