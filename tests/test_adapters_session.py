"""Sessions score windows on a cached prefix exactly as a full recompute would.

The reference runs each model row on its own: the unpadded prompt followed by the span tokens the
row keeps, no cache, no mask, default positions. Any slip in padding, position ids, hole masking,
cache crop or CFG row stacking shows up as a logit mismatch.
"""

from __future__ import annotations

import attrs
import pytest
import tiny_models
import torch

from pardecode.adapters.hf import Encoded, HFSession
from pardecode.core.backbone import NoisyInputs, Window
from pardecode.core.config import SamplingConfig
from pardecode.core.errors import ConfigError

FAMILIES = ["chameleon", "emu3", "janus"]
PROMPTS = ["a red dress with long sleeves", "boot"]  # different prompt lengths: left padding


def reference_logits(backbone, prompt: list[int], span: list[int], last: int) -> torch.Tensor:
    """Float[last, V]: logits of the final `last` positions of prompt + span, recomputed from scratch.

    Prompt tokens go through the text embedding, span tokens through the span embedding (the same
    table except for Janus, whose image tokens have their own).
    """
    with torch.no_grad():
        embeds = torch.cat(
            [
                backbone.body.get_input_embeddings()(torch.tensor([prompt])),
                backbone.span_embedding(torch.tensor([span], dtype=torch.long)),
            ],
            1,
        )
        hidden = backbone.body(inputs_embeds=embeds, use_cache=False).last_hidden_state
        return backbone.head(hidden[0, -last:]).float()


def window(tokens, offsets, key_valid, first=False) -> Window:
    return Window(
        tokens=torch.as_tensor(tokens, dtype=torch.long),
        offsets=torch.as_tensor(offsets, dtype=torch.long),
        key_valid=torch.as_tensor(key_valid, dtype=torch.bool),
        first=first,
    )


def check_rows(backbone, session, scores, spans: list[list[int] | None], q: int) -> None:
    """Every model row's window logits match the recompute of (its prompt + `spans[row]`);
    a finished row (span None) gets zeros."""
    enc = session.encoded
    branches = [(scores.cond, enc.cond)] + ([(scores.uncond, enc.uncond)] if enc.uncond else [])
    for logits, prompts in branches:
        for b, (prompt, span) in enumerate(zip(prompts, spans)):
            ref = torch.zeros_like(logits[b]) if span is None else reference_logits(backbone, prompt, span, q)
            torch.testing.assert_close(logits[b], ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("cfg", [1.0, 3.0])
@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("retire", [False, True])
def test_window_crop_and_holes_match_full_recompute(family, cfg, compact, retire):
    bb = tiny_models.backbone(family)
    session = bb.start(PROMPTS, SamplingConfig(cfg_scale=cfg), size=tiny_models.SMALL_SIZE[family])
    g = torch.Generator().manual_seed(0)
    draw = lambda *shape: torch.randint(0, bb.vocab_size, shape, generator=g)  # noqa: E731

    # pass 1: prompt + 3 drafts at offsets 0..2
    d = draw(2, 3)
    scores = session.forward(window(d, [[0, 1, 2]] * 2, torch.ones(2, 3), first=True))
    check_rows(bb, session, scores, [d[0].tolist(), d[1].tolist()], 4)

    # row 0 keeps drafts 0, 1 and commits a correction at offset 2 (pending);
    # row 1 keeps nothing and commits a correction at offset 0: its slots 0, 1 become holes
    session.crop(1)
    kept = [d[0, :2].tolist(), []]
    pend = draw(2)
    d2 = draw(2, 3)
    tokens = torch.cat([pend[:, None], d2], 1)
    offsets = [[2, 3, 4, 5], [0, 1, 2, 3]]
    key_valid = [[True, True] + [True] * 4, [False, False] + [True] * 4]
    scores = session.forward(window(tokens, offsets, key_valid))
    spans = [kept[b] + tokens[b].tolist() for b in range(2)]
    check_rows(bb, session, scores, spans, 4)

    # both rows accept one more draft; crop the rest and continue with a plain AR step
    session.crop(2)
    spans = [kept[0] + tokens[0, :2].tolist(), tokens[1, :2].tolist()]
    nxt = draw(2, 1)
    offsets = [[4], [2]]
    key_valid = [[True] * 4 + [True], [False, False, True, True, True]]
    if compact:  # row 1's two kept slots move to the front; its last two are junk it masks
        assert session.compact(torch.tensor([[0, 1, 2, 3], [2, 3, 0, 1]]))
        key_valid[1] = [True, True, False, False, True]
    # with `retire`, row 1 has finished: the session stops computing it, for good
    active = torch.tensor([True, not retire])
    scores = session.forward(attrs.evolve(window(nxt, offsets, key_valid), active=active))
    check_rows(bb, session, scores, [spans[0] + nxt[0].tolist(), None if retire else spans[1] + nxt[1].tolist()], 1)
    if retire:
        again = window(nxt, offsets, [[True] * 6, [True] * 6])
        with pytest.raises(ConfigError, match="active again"):
            session.forward(attrs.evolve(again, active=torch.tensor([True, True])))


@pytest.mark.parametrize("family", FAMILIES)
def test_cfg_in_one_pass_equals_branches_scored_separately(family):
    """The stacked cond + uncond pass gives each branch the logits of a session of its own."""
    bb = tiny_models.backbone(family)
    size = tiny_models.SMALL_SIZE[family]
    joint = bb.start(PROMPTS, SamplingConfig(cfg_scale=3.0), size=size)
    alone = bb.start(PROMPTS, SamplingConfig(cfg_scale=1.0), size=size)
    assert alone.encoded.uncond is None and joint.encoded.cond == alone.encoded.cond
    drafts = torch.randint(0, bb.vocab_size, (2, 5), generator=torch.Generator().manual_seed(1))
    w = window(drafts, [list(range(5))] * 2, torch.ones(2, 5), first=True)
    both, cond = joint.forward(w), alone.forward(w)
    torch.testing.assert_close(both.cond, cond.cond, atol=2e-5, rtol=1e-4)
    assert cond.uncond is None
    # the unconditional branch on its own: a session whose prompts are the negative rows
    negative = Encoded(cond=joint.encoded.uncond, uncond=None, layout=joint.layout)
    uncond = HFSession(bb.body, bb.head, negative, bb.pad_id, bb.device, span_embed=bb.span_embed)
    torch.testing.assert_close(both.uncond, uncond.forward(w).cond, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_unpadded_rows_skip_the_mask_and_still_match(family):
    """Equal-length prompts without CFG take the mask-free path; it matches the recompute too."""
    bb = tiny_models.backbone(family)
    session = bb.start(["same", "same"], SamplingConfig(), size=tiny_models.SMALL_SIZE[family])
    assert not session._padded
    d = torch.randint(0, bb.vocab_size, (2, 4), generator=torch.Generator().manual_seed(2))
    scores = session.forward(window(d, [list(range(4))] * 2, torch.ones(2, 4), first=True))
    check_rows(bb, session, scores, [d[0].tolist(), d[1].tolist()], 5)


@pytest.mark.parametrize("family", FAMILIES)
def test_noisy_window_at_level_zero_is_the_clean_window(family):
    """Denoising strategies feed embeddings; at noise level 0 a position reads its clean token."""
    bb = tiny_models.noisy_backbone(family)
    size = tiny_models.SMALL_SIZE[family]
    sampling = SamplingConfig(cfg_scale=3.0)
    d = torch.randint(0, bb.vocab_size, (2, 4), generator=torch.Generator().manual_seed(4))
    plain = bb.start(PROMPTS, sampling, size=size).forward(
        window(d, [list(range(4))] * 2, torch.ones(2, 4), first=True)
    )
    zero = NoisyInputs(embeds=torch.randn(2, 4, bb.embed_dim()), level=torch.zeros(2, 4))
    w = Window(d, torch.arange(4).expand(2, 4), torch.ones(2, 4, dtype=torch.bool), True, zero)
    clean = bb.start(PROMPTS, sampling, size=size).forward(w)
    torch.testing.assert_close(clean.cond, plain.cond)
    torch.testing.assert_close(clean.uncond, plain.uncond)
    # noise at the last two positions changes their own and later predictions, not earlier ones
    level = torch.tensor([[0.0, 0.0, 2.0, 2.0]] * 2)
    w = Window(
        d, torch.arange(4).expand(2, 4), torch.ones(2, 4, dtype=torch.bool), True, NoisyInputs(zero.embeds, level)
    )
    noisy = bb.start(PROMPTS, sampling, size=size).forward(w)
    torch.testing.assert_close(noisy.cond[:, :3], plain.cond[:, :3])
    assert not torch.allclose(noisy.cond[:, 3:], plain.cond[:, 3:])
    assert bb.noise_ready() and not tiny_models.backbone(family).noise_ready()
    emb = bb.token_embeddings(bb.image_tokens)
    torch.testing.assert_close(emb.mean(0), torch.zeros(bb.embed_dim()), atol=1e-5, rtol=0)
