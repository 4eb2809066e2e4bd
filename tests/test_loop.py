"""The loop's contract: invariants every strategy obeys, Jacobi = greedy AR, clear errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pardecode import (
    BackboneError,
    ConfigError,
    SamplingConfig,
    Scores,
    UnknownNameError,
    decode,
    get_backbone,
    get_strategy,
)
from pardecode.adapters.toy import ToyBackbone, ToySession
from pardecode.core.plugins import plugins

GREEDY = SamplingConfig(temperature=0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    vocab=st.integers(2, 12),
    length=st.integers(1, 40),
    window=st.integers(1, 20),
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 4),
    init=st.sampled_from(["random", "repeat"]),
    grid=st.booleans(),
)
def test_jacobi_at_temperature_zero_is_greedy_ar(vocab, length, window, seed, batch, init, grid):
    kw = {"grid": (max(1, length // 8), 7)} if grid and vocab >= 3 else {"length": length}
    backbone = ToyBackbone(vocab_size=vocab, seed=seed, sharpness=3.0, **kw)
    prompts = ["abc", "x", "hello", "zz"][:batch]
    ar = decode(backbone, "ar", prompts, sampling=GREEDY)
    jac = decode(backbone, get_strategy("jacobi", window=window, init=init), prompts, sampling=GREEDY, seed=seed)
    sjd = decode(backbone, get_strategy("sjd", window=window, init=init), prompts, sampling=GREEDY, seed=seed)
    assert torch.equal(jac.tokens, ar.tokens)
    assert torch.equal(sjd.tokens, ar.tokens)  # sjd at temperature 0 is Jacobi
    coupled = decode(
        backbone, get_strategy("sjd", window=window, coupling="gumbel"), prompts, sampling=GREEDY, seed=seed
    )
    assert torch.equal(coupled.tokens, ar.tokens)
    assert jac.forward_passes <= ar.forward_passes


STRATEGIES = [
    ("ar", {}),
    ("jacobi", {"window": 5}),
    ("sjd", {"window": 5}),
    ("sjd", {"window": 9, "init": "repeat"}),
    ("sjd", {"window": 6, "coupling": "gumbel"}),
]


@pytest.mark.parametrize("name,options", STRATEGIES)
@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_invariants_every_strategy(name, options, cfg):
    backbone = ToyBackbone(vocab_size=6, grid=(3, 5), seed=1)
    sampling = SamplingConfig(temperature=0 if name == "jacobi" else 1.0, cfg_scale=cfg)
    result = decode(backbone, get_strategy(name, **options), ["ab", "cde", "f"], sampling=sampling, seed=4)
    trace, window = result.trace, options.get("window", 0)
    # forward passes reported = backbone calls made
    assert isinstance(result.session, ToySession) and result.session.calls == trace.forward_passes
    # every pass commits between 1 and window+1 tokens per unfinished row, none once finished
    done_before = torch.cumsum(trace.committed, 0) - trace.committed >= backbone.layout().length
    running = trace.committed[~done_before]
    assert running.min() >= 1 and running.max() <= window + 1
    assert (trace.committed[done_before] == 0).all()
    assert (trace.committed.sum(0) == backbone.layout().length).all()
    assert backbone.layout().is_valid(result.tokens).all()
    # no pass scores draft slots past every row's end: windows narrow to the longest remaining row
    remaining = backbone.layout().length - (torch.cumsum(trace.committed, 0) - trace.committed)
    assert trace.widths == [min(window, int(r.max()) - 1) for r in remaining]


def test_rows_advance_independently():
    backbone = ToyBackbone(vocab_size=4, length=60, seed=2, sharpness=4.0)
    result = decode(backbone, get_strategy("sjd", window=8), ["a", "bb", "ccc", "dddd"], seed=0)
    per_pass = result.trace.committed[:-1]
    assert (per_pass.max(1).values != per_pass.min(1).values).any()


def test_compacting_the_cache_drops_holes_and_changes_no_token(monkeypatch):
    from pardecode.core import loop
    from pardecode.core.passes import common

    backbone = ToyBackbone(vocab_size=4, length=60, seed=2, sharpness=4.0)
    prompts = ["a", "bb", "ccc", "dddd"]

    def run(fraction):
        monkeypatch.setattr(common, "HOLE_FRACTION", fraction)
        sampling = backbone.default_sampling
        decoder = loop.Decoder(
            backbone, backbone.start(prompts, sampling), get_strategy("sjd", window=8), sampling, seed=0
        )
        return decoder.run(), decoder

    holey_result, holey = run(float("inf"))  # never compacts
    dense_result, dense = run(0.25)
    assert torch.equal(holey_result.tokens, dense_result.tokens)
    holey_valid, dense_valid = holey.kind.valid, dense.kind.valid
    width, longest = holey_valid.shape[1], int(holey_valid.sum(1).max())
    assert width - longest > width / 4  # without compaction the holes do pile up
    assert dense_valid.shape[1] < width
    assert torch.equal(dense_valid.sum(1), holey_valid.sum(1))
    assert dense.session.slots.shape[1] == dense_valid.shape[1]


def test_batch_rows_equal_single_row_decodes_when_greedy():
    backbone = ToyBackbone(vocab_size=5, length=30, seed=7, sharpness=2.0)
    prompts = ["a", "bcd", "ef"]
    together = decode(backbone, get_strategy("jacobi", window=6), prompts, sampling=GREEDY)
    for i, prompt in enumerate(prompts):
        alone = decode(backbone, "ar", [prompt], sampling=GREEDY)
        assert torch.equal(together.tokens[i], alone.tokens[0])


# --- bad input ------------------------------------------------------------------------------


def test_unknown_names_list_the_known_ones():
    with pytest.raises(
        UnknownNameError,
        match=r"unknown strategy 'nope'; known strategies: ar, entropy_sd, gsd, jacobi, lantern, .*sjd, ",
    ):
        get_strategy("nope")
    with pytest.raises(UnknownNameError, match=r"unknown backbone 'nope'; known backbones: .*toy"):
        get_backbone("nope")


@pytest.mark.parametrize("window", [0, -3, 2.5, True, "Auto"])
def test_window_must_be_a_positive_integer_or_auto(window):
    with pytest.raises(ConfigError, match=rf"window must be an integer >= 1 or 'auto', got {window!r}"):
        get_strategy("sjd", window=window)
    assert get_strategy("sjd", window="auto").window == get_strategy("sjd").window == "auto"


def test_unknown_coupling():
    with pytest.raises(ConfigError, match=r"coupling must be one of \['independent', 'gumbel', 'maximal'\], got 'max'"):
        get_strategy("sjd", coupling="max")


def test_unknown_draft_init():
    with pytest.raises(ConfigError, match=r"init must be one of \['random', 'repeat'\], got 'zeros'"):
        get_strategy("sjd", init="zeros")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"temperature": -0.1}, "temperature must be a finite number >= 0"),
        ({"temperature": math.nan}, "temperature must be a finite number >= 0"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"cfg_scale": -1.0}, "cfg_scale must be a finite number >= 0"),
    ],
)
def test_sampling_config_is_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SamplingConfig(**kwargs)


def test_jacobi_refuses_sampling():
    with pytest.raises(ConfigError, match="jacobi decodes greedily; got temperature 1"):
        decode(ToyBackbone(), "jacobi", ["a"])


@pytest.mark.parametrize("prompts", [[""], ["ok", ""], []])
def test_empty_prompt(prompts):
    with pytest.raises(ConfigError, match="empty|non-empty"):
        decode(ToyBackbone(), "ar", prompts)


class PoisonedSession(ToySession):
    """Returns NaN at one window position of one pass."""

    def forward(self, window):
        scores = super().forward(window)
        if self.calls == 4:
            cond = scores.cond.clone()
            cond[1, 2, 0] = float("nan")
            return Scores(cond, scores.uncond)
        return scores


def test_non_finite_logits_name_the_pass_and_position():
    backbone = ToyBackbone(length=50)
    session = backbone.start(["a", "b"], SamplingConfig())
    session.__class__ = PoisonedSession
    backbone.start = lambda *a, **k: session
    with pytest.raises(
        BackboneError, match=r"forward pass 3 \(conditional branch\): non-finite logit nan at row 1, window position 2"
    ):
        decode(backbone, get_strategy("sjd", window=4), ["a", "b"])


def test_strategy_options_need_a_name():
    with pytest.raises(ConfigError, match="strategy_options only apply"):
        decode(ToyBackbone(), get_strategy("ar"), ["a"], strategy_options={"window": 2})


def test_registry_entries_record_their_plugin():
    entry = plugins().strategies.get("sjd")
    assert entry.plugin == "pardecode.strategies" and "Speculative Jacobi" in entry.description
