"""Golden tests: pardecode reproduces, token for token, what each family's OFFICIAL generation code produced.

Each fixture under tests/golden/<family>/ holds a tiny random checkpoint saved by the official model
class (in the layout pardecode reads) and fixture.json: the prompts, sizes and guidance scales, the
rows the official code fed its model, the image tokens it generated greedily, and the first step's
largest guided logits. The scripts that made them (tools/golden/make_<family>_fixture.py) ran the
official code in its own virtualenv; these tests need only the fixtures.

Each family also has negative controls: the same decode with one deliberate mistake (a guidance row
built differently, q/k norms laid out per head instead of per shard, ...) must NOT reproduce the
fixture, which shows the comparison would catch that mistake.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import attrs
import pytest
import torch

from pardecode import decode
from pardecode.core.backbone import Window
from pardecode.core.config import SamplingConfig
from pardecode.core.sampling import guided_logits

GOLDEN = Path(__file__).parent / "golden"
STRATEGIES = ["ar", "jacobi"]
#: a fixed window: "auto" would first measure this machine's cost profile, which greedy equality does not need
STRATEGY_OPTIONS = {"jacobi": {"window": 16}}
LOGIT_TOLERANCE = 1e-4  # float32 on both sides; batching and padding differ, so not bit-exact


@functools.cache
def fixture(family: str) -> dict:
    return json.loads((GOLDEN / family / "fixture.json").read_text())


def groups(family: str) -> list[tuple[dict, list[dict]]]:
    """The fixture's cases grouped into batches: one decode per (size, cfg) over every prompt."""
    batches: dict[tuple, list[dict]] = {}
    for case in fixture(family)["cases"]:
        batches.setdefault((tuple(case.get("size") or ()), case["cfg_scale"]), []).append(case)
    return [(dict(size=tuple(k[0]) if k[0] else None, cfg=k[1]), cases) for k, cases in batches.items()]


def load(family: str, **options):
    from pardecode.api import get_backbone

    data = fixture(family)
    backbone = {"lumina": "chameleon"}.get(family, family)
    path = GOLDEN / family / data["checkpoint"]
    return get_backbone(backbone, path=str(path), dtype="float32", device="cpu", **options)


@functools.cache
def golden_backbone(family: str):
    return load(family)


def run(backbone, strategy: str, setting: dict, cases: list[dict]):
    sampling = SamplingConfig(temperature=0, cfg_scale=setting["cfg"])
    options = {"size": setting["size"]} if setting["size"] else {}
    return decode(
        backbone,
        strategy,
        [c["prompt"] for c in cases],
        sampling=sampling,
        strategy_options=STRATEGY_OPTIONS.get(strategy),
        **options,
    )


def first_guided(backbone, setting: dict, cases: list[dict]) -> torch.Tensor:
    """Float[B, V]: the guided logits of the first image token, from one prompt pass."""
    sampling = SamplingConfig(temperature=0, cfg_scale=setting["cfg"])
    options = {"size": setting["size"]} if setting["size"] else {}
    session = backbone.start([c["prompt"] for c in cases], sampling, **options)
    b = len(cases)
    empty = torch.zeros(b, 0, dtype=torch.long)
    window = Window(tokens=empty, offsets=empty, key_valid=torch.ones(b, 0, dtype=torch.bool), first=True)
    scores = session.forward(window)
    return guided_logits(scores, sampling)[:, -1]


def matches(backbone, family: str, strategy: str = "ar", guided_only: bool = False) -> bool:
    """True when `backbone` reproduces every case of the fixture (only the guided ones if asked)."""
    for setting, cases in groups(family):
        if guided_only and setting["cfg"] == 1.0:
            continue
        if run(backbone, strategy, setting, cases).tokens.tolist() != [c["image_tokens"] for c in cases]:
            return False
    return True


def check_family(family: str, strategy: str) -> None:
    bb = golden_backbone(family)
    for setting, cases in groups(family):
        result = run(bb, strategy, setting, cases)
        encoded = result.session.encoded
        assert encoded.cond == [c["cond_row"] for c in cases], setting
        if setting["cfg"] != 1.0:
            assert encoded.uncond == [c["uncond_row"] for c in cases], setting
        assert result.tokens.tolist() == [c["image_tokens"] for c in cases], (strategy, setting)


def check_first_logits(family: str) -> None:
    bb = golden_backbone(family)
    for setting, cases in groups(family):
        guided = first_guided(bb, setting, cases)
        for row, case in zip(guided, cases):
            want = case["first_step_guided_logits"]
            got = row[torch.tensor(want["ids"])]
            torch.testing.assert_close(got, torch.tensor(want["values"]), atol=LOGIT_TOLERANCE, rtol=0)
            assert int(row[torch.tensor(want["ids"])].argmax()) == 0  # the stored top token is ours too


def test_fixtures_record_where_they_came_from():
    for family in ("lumina", "janus"):
        data = fixture(family)
        assert data["official"]["repository"] and data["versions"]["torch"] and data["cases"]


# --- Lumina-mGPT: Alpha-VLLM/Lumina-mGPT's FlexARInferenceSolver processors -------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_lumina_reproduces_the_official_solver(strategy):
    """Both image sizes, CFG 3 and 1, both prompts in one batch (the solver decodes them one by one)."""
    check_family("lumina", strategy)


def test_lumina_first_step_guided_logits_match_the_official_solver():
    check_first_logits("lumina")


def test_lumina_reads_the_fixture_as_published():
    """The fixture is in the published layout: per-shard norms, bf16 shards with an index, no pardecode.json."""
    root = GOLDEN / "lumina" / fixture("lumina")["checkpoint"]
    config = json.loads((root / "config.json").read_text())
    assert config["architectures"] == ["ChameleonXLLMXForConditionalGeneration"]
    assert config["model_parallel_size"] == 2 and config["num_attention_heads"] == 4
    assert (root / "model.safetensors.index.json").is_file() and not (root / "pardecode.json").exists()
    from safetensors import safe_open

    shard = min(root.glob("model-*.safetensors"))
    with safe_open(shard, "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # noqa: SIM118 (safe_open has no __iter__)


def test_lumina_negative_control_guidance_row():
    """A guidance row that starts with bos (or the SJD authors' row) does not reproduce the solver."""
    bb = load("lumina")
    bb.spec = attrs.evolve(bb.spec, guidance_bos=True)
    assert not matches(bb, "lumina", guided_only=True)
    assert not matches(load("lumina", guidance_row="sjd"), "lumina", guided_only=True)


def test_lumina_negative_control_norm_layout():
    """Norm rows tiled over the heads ([a, b, a, b]) instead of repeated per shard ([a, a, b, b])."""
    bb = load("lumina")
    with torch.no_grad():
        for layer in bb.model.model.layers:
            for norm in (layer.self_attn.q_norm, layer.self_attn.k_norm):
                for p in (norm.weight, norm.bias):
                    p.copy_(p[[0, 2, 1, 3]])
    assert not matches(bb, "lumina")


# --- Janus: deepseek-ai/Janus generation_inference.py's generate() ---------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_janus_reproduces_the_official_generator(strategy):
    """CFG 5 and 1 (the official loop always runs both rows; at 1 the guided logits are the conditional
    ones), both prompts in one batch; the size is the checkpoint's (4 x 4 tokens)."""
    check_family("janus", strategy)


def test_janus_first_step_guided_logits_match_the_official_generator():
    check_first_logits("janus")


def test_janus_negative_control_guidance_row():
    """An unconditional row of bos + begin-of-image only (no pads) does not reproduce the generator."""
    bb = load("janus")
    encode = bb.encode

    def short_guidance(prompts, sampling, size=None):
        encoded = encode(prompts, sampling, size)
        uncond = None if encoded.uncond is None else [[r[0], r[-1]] for r in encoded.uncond]
        return attrs.evolve(encoded, uncond=uncond)

    bb.encode = short_guidance
    assert not matches(bb, "janus", guided_only=True)


def test_janus_negative_control_generation_head():
    """Image tokens scored by a head whose hidden layer is read transposed (a wrong weight mapping)."""
    bb = load("janus")
    with torch.no_grad():
        w = bb.model.model.generation_head.proj_out.weight
        w.copy_(w.t().clone())
    assert not matches(bb, "janus")


# --- the SJD authors' guidance row (tyshiwo1/Accelerating-T2I-AR-with-SJD) ---------------------------------


def test_sjd_guidance_row_is_the_separator_then_the_image_head():
    from pardecode.core.errors import ConfigError

    official, sjd = golden_backbone("lumina"), load("lumina", guidance_row="sjd")
    sampling = SamplingConfig(cfg_scale=3.0)
    a = official.start(["a red fox"], sampling, size=(128, 64)).encoded
    b = sjd.start(["a red fox"], sampling, size=(128, 64)).encoded
    assert a.cond == b.cond
    assert a.uncond == [[8197, 8804 + 2, 8804 + 4]]  # [soi, h, w]: 64 px high = 2 grid units, 128 wide = 4
    assert b.uncond == [[8710, 8197, 8804 + 2, 8804 + 4]]  # <reserved08706> first
    with pytest.raises(ConfigError, match=r"guidance_row must be one of \['official', 'sjd'\], got 'meta'"):
        load("lumina", guidance_row="meta")


def test_sjd_guidance_row_equals_the_masked_prompt_row():
    """The SJD code feeds the whole conditional row to its guidance branch with every prompt token but the
    last masked out, positions counted over the visible tokens (attention_mask.cumsum - 1): the branch's
    logits equal those of pardecode's short row [separator, soi, h, w]."""
    bb = load("lumina", guidance_row="sjd")
    setting, cases = groups("lumina")[0]
    sampling = SamplingConfig(temperature=0, cfg_scale=3.0)
    session = bb.start([cases[0]["prompt"]], sampling, size=setting["size"])
    empty = torch.zeros(1, 0, dtype=torch.long)
    window = Window(tokens=empty, offsets=empty, key_valid=torch.ones(1, 0, dtype=torch.bool), first=True)
    ours = session.forward(window)
    row = session.encoded.cond[0]
    ids = torch.tensor([row])
    mask = torch.zeros_like(ids)
    mask[0, -4:] = 1  # the separator, then soi, h, w (generated after the prompt in the SJD code)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        hidden = bb.model.model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
        theirs = bb.model.lm_head(hidden[:, -1])
    torch.testing.assert_close(ours.uncond[:, -1], theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sjd_guidance_row_decodes(strategy):
    """Greedy ar and jacobi agree with it, produce valid images, and differ from the official row's."""
    bb = load("lumina", guidance_row="sjd")
    setting, cases = groups("lumina")[0]
    assert setting["cfg"] == 3.0
    result = run(bb, strategy, setting, cases)
    assert bool(result.session.layout.is_valid(result.tokens).all())
    assert result.tokens.tolist() == run(bb, "ar", setting, cases).tokens.tolist()
    assert result.tokens.tolist() != [c["image_tokens"] for c in cases]
