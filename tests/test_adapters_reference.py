"""Greedy decoding through pardecode reproduces transformers' own `generate`, token for token.

The reference is transformers' generation stack on the same weights: `generate(do_sample=False)` with
a `prefix_allowed_tokens_fn` spelling each family's published layout rule, and for guidance its
`guidance_scale` + `negative_prompt_ids` (an unbatched second model call with its own cache, where
pardecode stacks both branches in one pass). Emu3's prompt rows are also checked against
`Emu3Processor`. Chameleon's generation head masks image-token logits; the reference loads the same
weights with a vocabulary map that names no image tokens, which makes that mask empty.
"""

from __future__ import annotations

import pytest
import tiny_models
import torch
from transformers import ChameleonForConditionalGeneration, Emu3ForConditionalGeneration

from pardecode import decode
from pardecode.core.config import SamplingConfig

PROMPTS = ["a red dress", "an ankle boot with laces"]


def left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def lumina_rule(prompt_width: int, rows: int, cols: int, image, eol: int, eoi: int):
    """Lumina-mGPT's layout: rows of `cols` image tokens each closed by end-of-line, then end-of-image."""

    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        offset = ids.shape[0] - prompt_width
        if offset >= rows * (cols + 1):
            return [eoi]
        return [eol] if offset % (cols + 1) == cols else image

    return allowed


def emu3_rule(wrapper: int, rows: int, cols: int, visual, eol: int, eof: int, eoi: int, eos: int, pad: int):
    """Emu3's published rule, offsets counted from the <|image token|> wrapper."""

    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        position = torch.nonzero(ids == wrapper)[0, 0]
        offset = ids.shape[0] - int(position)
        if offset % (cols + 1) == 0:
            return [eol]
        if offset == (cols + 1) * rows + 1:
            return [eof]
        if offset == (cols + 1) * rows + 2:
            return [eoi]
        if offset == (cols + 1) * rows + 3:
            return [eos]
        if offset > (cols + 1) * rows + 3:
            return [pad]
        return visual

    return allowed


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_chameleon_greedy_ar_equals_generate(cfg):
    bb = tiny_models.chameleon_backbone()
    sampling = SamplingConfig(temperature=0, cfg_scale=cfg)
    ours = decode(bb, "ar", PROMPTS, sampling=sampling, size=(8, 8))
    enc = ours.session.encoded
    layout = ours.session.layout

    # same weights; a vocabulary map without IMGIMG names empties the head's image-logit mask
    ref = ChameleonForConditionalGeneration.from_pretrained(
        tiny_models.chameleon_dir(), vocabulary_map={"<image>": 4}
    ).eval()
    ids, mask = left_padded(enc.cond, pad=0)
    spec = bb.spec
    rule = lumina_rule(
        ids.shape[1],
        layout.rows,
        layout.cols,
        list(range(*spec.image_token_range)),
        spec.end_of_line_id,
        spec.end_of_image_id,
    )
    extra = {}
    if cfg != 1:
        assert len({len(r) for r in enc.uncond}) == 1  # [bos, soi, h, w]: no padding needed
        extra = dict(guidance_scale=cfg, negative_prompt_ids=torch.tensor(enc.uncond))
    out = ref.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=layout.length,
        min_new_tokens=layout.length,
        prefix_allowed_tokens_fn=rule,
        pad_token_id=0,
        **extra,
    )
    expected = out[:, ids.shape[1] :]
    assert torch.equal(ours.tokens, expected)
    assert bool(layout.is_valid(ours.tokens).all())
    assert ours.trace.forward_passes == layout.length


def emu3_processor():
    from transformers import AutoTokenizer, Emu3ImageProcessor, Emu3Processor

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.emu3_dir())
    return Emu3Processor(image_processor=Emu3ImageProcessor(), tokenizer=tokenizer)


def test_emu3_prompt_rows_equal_emu3_processor():
    """Our rows = Emu3Processor's image-generation inputs (its size grid is 8 px, ours 4: 32x32 vs 16x16)."""
    bb = tiny_models.emu3_backbone()
    session = bb.start(PROMPTS, SamplingConfig(cfg_scale=3.0), size=(16, 16))
    proc = emu3_processor()
    texts = [p + bb.style.prompt_suffix for p in PROMPTS]
    for texts_, rows in ((texts, session.encoded.cond), ([bb.style.negative_prompt] * 2, session.encoded.uncond)):
        out = proc(text=texts_, return_for_image_generation=True, image_area=32 * 32, padding=True)
        got = [[t for t, m in zip(ids, mask) if m] for ids, mask in zip(out["input_ids"], out["attention_mask"])]
        assert got == rows


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_emu3_greedy_ar_equals_generate(cfg):
    bb = tiny_models.emu3_backbone()
    sampling = SamplingConfig(temperature=0, cfg_scale=cfg)
    ours = decode(bb, "ar", PROMPTS, sampling=sampling, size=(16, 16))
    enc, layout = ours.session.encoded, ours.session.layout

    ref = Emu3ForConditionalGeneration.from_pretrained(tiny_models.emu3_dir()).eval()
    tok = bb.tokenizer
    pad = tok.pad_token_id
    ids, mask = left_padded(enc.cond, pad=pad)
    visual = ref.model.vocabulary_mapping.image_tokens
    eol = tok.convert_tokens_to_ids("<|extra_200|>")
    rule = emu3_rule(
        tok.convert_tokens_to_ids(tok.image_wrapper_token),
        layout.rows,
        layout.cols,
        visual,
        eol,
        tok.convert_tokens_to_ids(tok.eof_token),
        tok.convert_tokens_to_ids(tok.eoi_token),
        tok.eos_token_id,
        pad,
    )
    extra = {}
    if cfg != 1:
        neg = torch.tensor(enc.uncond)  # the same negative prompt on every row
        extra = dict(guidance_scale=cfg, negative_prompt_ids=neg, negative_prompt_attention_mask=torch.ones_like(neg))
    out = ref.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=layout.length,
        prefix_allowed_tokens_fn=rule,
        pad_token_id=pad,
        eos_token_id=tok.eos_token_id,
        **extra,
    )
    expected = out[:, ids.shape[1] :]
    assert expected.shape[1] == layout.length  # generation ran to the EOS the layout ends with
    assert torch.equal(ours.tokens, expected)
    assert bool(layout.is_valid(ours.tokens).all())


@pytest.mark.parametrize("cfg", [3.0, 5.0])
def test_janus_greedy_ar_equals_generate(cfg):
    """Janus' own image generator (batched CFG over pad-masked prompts, static cache) as the reference.

    It always runs guidance (a scale of 1 would break its output shape), so only CFG > 1 is compared.
    """
    import transformers
    from packaging.version import Version
    from transformers import GenerationConfig, JanusForConditionalGeneration

    if Version(transformers.__version__) < Version("5.5"):
        # its first image step read the prompt ids instead of the CFG-masked embeddings until 5.5
        # (huggingface/transformers PR 45044); pardecode's tokens are the same on every version
        pytest.skip("transformers' own Janus image generator is the reference only from 5.5 on")

    bb = tiny_models.janus_backbone()
    ours = decode(bb, "ar", PROMPTS, sampling=SamplingConfig(temperature=0, cfg_scale=cfg))
    enc = ours.session.encoded
    ref = JanusForConditionalGeneration.from_pretrained(tiny_models.janus_dir()).eval()
    ids, mask = left_padded(enc.cond, pad=bb.pad_id)
    config = GenerationConfig(
        do_sample=False,
        guidance_scale=cfg,
        num_return_sequences=1,
        max_length=ids.shape[1] + enc.layout.length,  # no defaults before 5.2x
        pad_token_id=bb.pad_id,
        bos_token_id=bb.tokenizer.bos_token_id,
        generation_kwargs={"boi_token_id": bb.boi_id},
    )
    expected = ref.generate(input_ids=ids, attention_mask=mask, generation_mode="image", generation_config=config)
    assert torch.equal(ours.tokens, expected)
    # and our unconditional rows are exactly what it builds: bos, pads, begin-of-image
    assert enc.uncond == [[r[0]] + [bb.pad_id] * (len(r) - 2) + [r[-1]] for r in enc.cond]
