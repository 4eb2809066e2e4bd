"""Golden test for Emu3: pardecode reproduces, token for token, what baaivision/Emu3's own generation path produced.

tests/golden/emu3/ holds a tiny random model of the official class (`Emu3ForCausalLM` from the
official remote code, 2 layers of width 8) converted to transformers' `Emu3ForConditionalGeneration`
layout, and fixture.json: the rows the official `Emu3Processor` built (prompt with the quality suffix,
the negative prompt for guidance), and the image tokens `model.generate` produced greedily with the
logits processors of the official image_generation.py (unbatched CFG, the processor's prefix
constraint), at 4 x 4 and 3 x 5 tokens, CFG 3 and 1. tools/golden/make_emu3_fixture.py and
convert_emu3_fixture.py made it; this test needs only the fixture.

Negative controls: the same decode with one deliberate mistake must NOT reproduce the fixture.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from pardecode import decode
from pardecode.core.backbone import Window
from pardecode.core.config import SamplingConfig
from pardecode.core.sampling import guided_logits

ROOT = Path(__file__).parent / "golden" / "emu3"
STRATEGY_OPTIONS = {"jacobi": {"window": 16}}  # fixed: "auto" would first measure this machine
#: float32 on both sides, but the official loop decodes with a growing cache and left padding
LOGIT_TOLERANCE = 1e-4


@functools.cache
def fixture() -> dict:
    return json.loads((ROOT / "fixture.json").read_text())


def groups() -> list[tuple[tuple[int, int], float, list[dict]]]:
    """One batch per (size, cfg) over both prompts, as the official script batches them."""
    batches: dict[tuple, list[dict]] = {}
    for case in fixture()["cases"]:
        batches.setdefault((tuple(case["size"]), case["cfg_scale"]), []).append(case)
    return [(size, cfg, cases) for (size, cfg), cases in batches.items()]


def load(**options):
    from pardecode.api import get_backbone

    path = ROOT / fixture()["checkpoint"]
    return get_backbone("emu3", path=str(path), dtype="float32", device="cpu", **options)


@functools.cache
def golden():
    return load()


def run(backbone, strategy: str, size, cfg: float, cases: list[dict], **start):
    sampling = SamplingConfig(temperature=0, cfg_scale=cfg)
    return decode(
        backbone,
        strategy,
        [c["prompt"] for c in cases],
        sampling=sampling,
        strategy_options=STRATEGY_OPTIONS.get(strategy),
        size=size,
        **start,
    )


def matches(backbone, strategy: str = "ar", guided_only: bool = False, **start) -> bool:
    """True when `backbone` reproduces every case of the fixture (only the guided ones if asked)."""
    for size, cfg, cases in groups():
        if guided_only and cfg == 1.0:
            continue
        if run(backbone, strategy, size, cfg, cases, **start).tokens.tolist() != [c["image_tokens"] for c in cases]:
            return False
    return True


def test_fixture_records_where_it_came_from():
    data = fixture()
    assert data["official"]["repository"] == "baaivision/Emu3" and data["versions"]["transformers"] == "4.44.2"
    assert data["special_ids"]["<|endoftext|>"] == 151643  # the official fixed SPECIAL_START_ID
    assert len(groups()) == 4 and all(len(cases) == 2 for *_, cases in groups())


@pytest.mark.parametrize("strategy", ["ar", "jacobi"])
def test_emu3_reproduces_the_official_generator(strategy):
    """Both sizes, CFG 3 and 1: the rows the official processor built and the tokens it generated."""
    bb = golden()
    for size, cfg, cases in groups():
        result = run(bb, strategy, size, cfg, cases)
        encoded = result.session.encoded
        assert encoded.cond == [c["cond_row"] for c in cases], (size, cfg)
        if cfg != 1.0:
            assert encoded.uncond == [c["uncond_row"] for c in cases], (size, cfg)
        assert result.tokens.tolist() == [c["image_tokens"] for c in cases], (strategy, size, cfg)


def test_emu3_first_step_guided_logits_match_the_official_generator():
    """The official CFG combines log-softmaxes, which shifts each row by a constant: compare the
    stored top logits relative to the largest, and the largest's id."""
    bb = golden()
    for size, cfg, cases in groups():
        sampling = SamplingConfig(temperature=0, cfg_scale=cfg)
        session = bb.start([c["prompt"] for c in cases], sampling, size=size)
        empty = torch.zeros(len(cases), 0, dtype=torch.long)
        window = Window(tokens=empty, offsets=empty, key_valid=torch.ones(len(cases), 0, dtype=torch.bool), first=True)
        guided = guided_logits(session.forward(window), sampling)[:, -1]
        for row, case in zip(guided, cases):
            want = case["first_step_guided_logits"]
            ids = torch.tensor(want["ids"])
            got, expected = row[ids], torch.tensor(want["values"])
            torch.testing.assert_close(got - got[0], expected - expected[0], atol=LOGIT_TOLERANCE, rtol=0)
            visual = bb.image_tokens
            assert int(visual[row[visual].argmax()]) == want["ids"][0]


def test_emu3_negative_control_guidance_row():
    """Guidance against an empty negative prompt, not the official one, does not reproduce the generator."""
    assert not matches(golden(), guided_only=True, negative_prompt="")


def test_emu3_negative_control_prompt_suffix():
    """Prompts without the official quality suffix do not reproduce the generator."""
    from pardecode.adapters.emu3 import Emu3Style

    bb = load()
    bb.style = Emu3Style(prompt_suffix="")
    assert not matches(bb)


def test_emu3_negative_control_rope_theta():
    """The official rope base (1e6) read as Llama's default (1e4), a conversion mistake, is caught."""
    bb = load()
    rotary = bb.model.model.text_model.rotary_emb
    with torch.no_grad():
        dim = rotary.inv_freq.numel() * 2
        rotary.inv_freq.copy_(1.0 / (10_000.0 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)))
    assert not matches(bb)
