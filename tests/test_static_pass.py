"""The static pass (`static=True`): fixed shapes after the prompt, the same tokens as the eager pass.

Logits of a static pass may differ from the eager pass's in the last bits (its attention reduces
over the whole, masked cache capacity and a padded window), so sessions are compared with the
tolerance of the full-recompute tests and decodes by their tokens, which must be identical.
"""

from __future__ import annotations

import copy
import functools

import pytest
import tiny_models
import torch

import pardecode
from pardecode.adapters.hf import HFSession, StaticSession
from pardecode.adapters.static_kv import WINDOW_BUCKETS, bucket_of
from pardecode.core.backbone import Window
from pardecode.core.config import SamplingConfig
from pardecode.core.errors import ConfigError
from pardecode.core.loop import Decoder
from pardecode.planning import GENERIC_PRIOR, profile_key

FAMILIES = ["chameleon", "emu3", "janus"]
STRATEGIES = [  # (name, options): fixed and automatic windows, single windows and placed slots
    ("ar", {}),
    ("sjd", {"window": 4}),
    ("sjd", {"window": "auto"}),
    ("sjd_pac", {"window": "auto"}),
    ("sjd_pac_tree", {"window": 8}),
    ("zipar", {}),
    ("pjd", {}),
]
IDS = [f"{n}-{o.get('window', '')}" for n, o in STRATEGIES]


def static_twin(backbone):
    """The same model (shared weights) running the static pass."""
    twin = copy.copy(backbone)
    twin.static = True
    return twin


@functools.cache
def fashion_pair():
    eager = pardecode.get_backbone("fashion")
    return eager, static_twin(eager)


#: strategies whose decisions rank near-equal probabilities (sjd_pac_tree's "top" siblings are the
#: likeliest tokens of q): a last-bit difference can reorder two of them, so their tokens may part
TIE_SENSITIVE = {"sjd_pac_tree"}


def recorded_decode(backbone, strategy, options, prompts, sampling, **start):
    """(tokens, [(window, scores)] of every pass) of one decode."""
    session = backbone.start(prompts, sampling, **start)
    passes, inner = [], session.forward

    def forward(window):
        scores = inner(window)
        passes.append((window, scores))
        return scores

    session.forward = forward
    strategy = pardecode.get_strategy(strategy, **options)
    result = Decoder(backbone, session, strategy, sampling, 5, GENERIC_PRIOR).run()
    return result.tokens, passes, session


def same_tokens(eager, static, strategy, options, prompts, cfg, **start):
    """Both passes score every window alike (to float rounding) and decode the same tokens.

    Only a strategy in TIE_SENSITIVE may part, and only after a pass whose logits still agreed: a
    rounding-level reordering of near-equal probabilities, never a different computation."""
    sampling = SamplingConfig(cfg_scale=cfg, top_k=eager.default_sampling.top_k)
    (tokens_a, passes_a, session_a), (tokens_b, passes_b, session_b) = (
        recorded_decode(bb, strategy, options, prompts, sampling, **start) for bb in (eager, static)
    )
    assert type(session_a) is HFSession and type(session_b) is StaticSession
    for (wa, sa), (wb, sb) in zip(passes_a, passes_b):
        if not (torch.equal(wa.tokens, wb.tokens) and torch.equal(wa.offsets, wb.offsets)):
            break  # the decodes parted at the pass before
        torch.testing.assert_close(sb.cond, sa.cond, atol=2e-5, rtol=1e-4)
        if sa.uncond is not None:
            torch.testing.assert_close(sb.uncond, sa.uncond, atol=2e-5, rtol=1e-4)
    if not torch.equal(tokens_a, tokens_b):
        assert strategy in TIE_SENSITIVE, f"{strategy} decoded other tokens with the static pass"
        return
    assert [w.tokens.shape for w, _ in passes_a] == [w.tokens.shape for w, _ in passes_b]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy, options", STRATEGIES, ids=IDS)
def test_tiny_models_decode_the_same_tokens(family, strategy, options):
    eager = tiny_models.backbone(family)
    static = static_twin(eager)
    size = tiny_models.SMALL_SIZE[family]
    for cfg in (1.0, 3.0):
        for prompts in (["boot"], ["a red dress with long sleeves", "boot"]):  # batch 1, and with padding
            same_tokens(eager, static, strategy, options, prompts, cfg, size=size)


@pytest.mark.parametrize("family", FAMILIES)
def test_noisy_windows_decode_the_same_tokens(family):
    eager = tiny_models.noisy_backbone(family)
    prompts = ["a red dress with long sleeves", "boot"]
    same_tokens(eager, static_twin(eager), "sjd2", {"window": 4}, prompts, 3.0, size=tiny_models.SMALL_SIZE[family])


@pytest.mark.parametrize("cfg", [1.0, 3.0])
@pytest.mark.parametrize("strategy, options", STRATEGIES, ids=IDS)
def test_default_model_decodes_the_same_tokens(strategy, options, cfg):
    eager, static = fashion_pair()
    prompts = ["a sneaker", "a photo of an ankle boot"]
    assert not static.start(prompts)._prompt_valid.all()  # the batch is left-padded
    for batch in (prompts[:1], prompts):
        same_tokens(eager, static, strategy, options, batch, cfg)


def window(tokens, offsets, key_valid, first=False, active=None) -> Window:
    return Window(
        tokens=torch.as_tensor(tokens, dtype=torch.long),
        offsets=torch.as_tensor(offsets, dtype=torch.long),
        key_valid=torch.as_tensor(key_valid, dtype=torch.bool),
        first=first,
        active=None if active is None else torch.as_tensor(active),
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_sessions_agree_through_crops_holes_compaction_and_finished_rows(family):
    eager = tiny_models.backbone(family)
    static = static_twin(eager)
    start = dict(size=tiny_models.SMALL_SIZE[family])
    prompts = ["a red dress with long sleeves", "boot"]
    sessions = [bb.start(prompts, SamplingConfig(cfg_scale=3.0), **start) for bb in (eager, static)]
    g = torch.Generator().manual_seed(0)
    draw = lambda *shape: torch.randint(0, eager.vocab_size, shape, generator=g)  # noqa: E731

    def both(w: Window):
        a, b = (s.forward(w) for s in sessions)
        torch.testing.assert_close(b.cond, a.cond, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(b.uncond, a.uncond, atol=2e-5, rtol=1e-4)
        return b

    d = draw(2, 3)
    first = both(window(d, [[0, 1, 2]] * 2, torch.ones(2, 3), first=True))
    assert first.cond.shape[1] == 4
    for s in sessions:  # row 0 keeps two drafts, row 1 none: slots 1, 2 of row 1 become holes
        s.crop(1)
    valid = [[1, 1, 1, 1, 1, 1], [1, 0, 0, 1, 1, 1]]
    both(window(draw(2, 4), [[2, 3, 4, 5], [0, 1, 2, 3]], valid))
    for s in sessions:
        s.crop(2)
    assert all(s.compact(torch.tensor([[0, 1, 2, 3], [0, 3, 1, 2]])) for s in sessions)  # row 1: holes last
    both(window(draw(2, 2), [[4, 5], [2, 3]], [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]]))
    scores = both(window(draw(2, 1), [[6], [6]], torch.ones(2, 7), active=[True, False]))  # row 1 finished
    assert not scores.cond[1].any() and not scores.uncond[1].any()
    with pytest.raises(ConfigError, match="active again"):
        sessions[1].forward(window(draw(2, 1), [[7], [7]], torch.ones(2, 8), active=[True, True]))


def test_a_window_wider_than_the_room_grows_the_cache():
    eager = tiny_models.backbone("chameleon")
    sessions = [bb.start(["boot"], SamplingConfig(cfg_scale=1.0), size=(8, 8)) for bb in (eager, static_twin(eager))]
    for s in sessions:
        s.forward(window([[17]], [[0]], [[1]], first=True))
    capacity = sessions[1]._capacity
    q = capacity  # past the room the prompt pass made
    wide = window(torch.full((1, q), 17), [list(range(1, q + 1))], torch.ones(1, 1 + q))
    a, b = (s.forward(wide) for s in sessions)
    assert sessions[1]._capacity > capacity
    torch.testing.assert_close(b.cond, a.cond, atol=2e-5, rtol=1e-4)


def test_buckets():
    assert [bucket_of(w) for w in (1, 2, 3, 4, 5, 6, 17, 18, 65)] == [1, 2, 3, 5, 5, 9, 17, 33, 65]
    widest = WINDOW_BUCKETS[-1]
    assert bucket_of(widest + 1) == 2 * widest


def test_static_option_reaches_the_backbone_and_the_profile_key():
    eager, static = fashion_pair()
    assert pardecode.get_backbone("fashion", static=True).static is True
    assert "pass" not in profile_key(eager, eager.default_sampling)
    assert profile_key(static, static.default_sampling)["pass"] == "static"
    with pytest.raises(ConfigError, match="static must be true or false"):
        pardecode.get_backbone("fashion", static="yes")


def test_compile_with_the_static_pass_is_static_and_keeps_the_eager_prompt_pass(monkeypatch, capsys):
    from pardecode.cli import main

    wrapped = []

    def fake_compile(fn, **options):  # the real one takes tens of seconds: the wiring is what is tested
        wrapped.append(options)
        return lambda *a, **k: fn(*a, **k)

    monkeypatch.setattr(torch, "compile", fake_compile)
    args = ["overhead", "--backbone", "fashion", "-B", "static=true", "--compile", "--strategy", "sjd"]
    assert main([*args, "--window", "4", "--repeats", "1", "--batch", "1", "--json"]) == 0
    assert wrapped == [{"dynamic": False, "mode": None}]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inductor's own
def test_compiled_static_forward_decodes_the_same_tokens():
    """The real `torch.compile` on a tiny model (inductor on the CPU: some seconds per bucket, so
    AR only: one graph, the prompt pass staying eager)."""
    from pardecode.adapters.chameleon import ChameleonBackbone

    eager = tiny_models.backbone("chameleon")
    compiled = ChameleonBackbone.from_pretrained(tiny_models.chameleon_dir(), static=True)
    compiled.compile()
    same_tokens(eager, compiled, "ar", {}, ["a red dress with long sleeves", "boot"], 3.0, size=(8, 8))
