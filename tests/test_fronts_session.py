"""Sessions score placed slots (explicit offsets and attention) exactly as a full recompute would.

The reference runs one model row and one query at a time, without cache or mask: the unpadded
prompt, then exactly the span tokens the query may see, in offset order and at their true
positions, then the query itself. Gaps in the context, several candidates for one offset, crops,
compaction and retired rows all have to agree with it.
"""

from __future__ import annotations

import pytest
import tiny_models
import torch

from pardecode.adapters.toy import ToyBackbone
from pardecode.core.backbone import Window
from pardecode.core.config import SamplingConfig

FAMILIES = ["chameleon", "emu3", "janus"]
PROMPTS = ["a red dress with long sleeves", "boot"]  # different prompt lengths: left padding


def hf_reference(bb, prompt: list[int], seen: list[tuple[int, int]], query: tuple[int, int]) -> torch.Tensor:
    """Float[V] logits of `query` (offset, token) after `prompt` and the span tokens `seen`."""
    span = sorted(seen) + [query]
    with torch.no_grad():
        embeds = torch.cat(
            [
                bb.body.get_input_embeddings()(torch.tensor([prompt])),
                bb.span_embedding(torch.tensor([[t for _, t in span]], dtype=torch.long)),
            ],
            1,
        )
        positions = torch.tensor([list(range(len(prompt))) + [len(prompt) + o for o, _ in span]])
        # an explicit mask: without one, transformers reads a jump in position ids as a packed new sequence
        mask = torch.ones(positions.shape, dtype=torch.long)
        hidden = bb.body(
            inputs_embeds=embeds, position_ids=positions, attention_mask=mask, use_cache=False
        ).last_hidden_state
        return bb.head(hidden[0, -1]).float()


def toy_reference(
    bb: ToyBackbone, prompt: list[int], seen: list[tuple[int, int]], query: tuple[int, int]
) -> torch.Tensor:
    """The toy's closed form on that history: position prompt + offset + 1, the query token, the sum."""
    total = sum(prompt) + sum(t for _, t in seen) + query[1]
    return bb.table[(len(prompt) + query[0] + 1) % bb.period, query[1], total % bb.modulus]


class Tracker:
    """The span slots of each generation row, mirrored on the Python side as a drafting tree.

    Each new slot picks a parent among the slots at smaller offsets (or none) and sees exactly the
    parent's context plus the parent: contexts stay consistent (whatever a slot sees was computed
    with the same context it sees), which a per-query recompute can reproduce. Fronts, gaps and
    candidates for one offset are all such trees.
    """

    def __init__(self, batch: int):
        self.slots: list[list[int]] = [[] for _ in range(batch)]  # slot ids in cache order
        self.info: list[dict[int, tuple[int, int, frozenset]]] = [
            {} for _ in range(batch)
        ]  # id -> offset, token, ancestors
        self.next_id = 0

    def window(self, tokens, offsets, g, first=False, active=None) -> tuple[Window, list]:
        b, q = tokens.shape
        s = len(self.slots[0])
        attention = torch.zeros(b, q, s + q, dtype=torch.bool)
        contexts = []
        for r in range(b):
            info, row = self.info[r], self.slots[r]
            ids = []
            for i in range(q):
                o, t = int(offsets[r, i]), int(tokens[r, i])
                keys = row + ids
                parents = [k for k in keys if info[k][0] < o]
                pick = int(torch.randint(len(parents) + 1, (1,), generator=g))
                seen = frozenset() if pick == len(parents) else info[parents[pick]][2] | {parents[pick]}
                ident, self.next_id = self.next_id, self.next_id + 1
                info[ident] = (o, t, seen)
                ids.append(ident)
            for i, ident in enumerate(ids):
                keys = row + ids
                attention[r, i] = torch.tensor([k in info[ident][2] or k == ident for k in keys])
            contexts.append([[info[k][:2] for k in info[ident][2]] for ident in ids])
            self.slots[r] = row + ids
        key_valid = torch.ones(b, s + q, dtype=torch.bool)
        return Window(tokens, offsets, key_valid, first, None, active, attention), contexts

    def crop(self, n):
        self.slots = [row[: len(row) - n] for row in self.slots]

    def compact(self, index):
        self.slots = [[row[i] for i in index[r].tolist()] for r, row in enumerate(self.slots)]


def check(reference, bb, encoded, scores, window, contexts, first, finished=()):
    branches = [(scores.cond, encoded[0])] + ([(scores.uncond, encoded[1])] if encoded[1] else [])
    for logits, prompts in branches:
        for r, prompt in enumerate(prompts):
            for i in range(window.tokens.shape[1]):
                got = logits[r, i + first]
                if r in finished:  # a session may stop computing it (HF returns zeros), the loop never reads it
                    continue
                query = (int(window.offsets[r, i]), int(window.tokens[r, i]))
                torch.testing.assert_close(got, reference(bb, prompt, contexts[r][i], query), atol=2e-5, rtol=1e-4)


def run_passes(reference, bb, session, encoded, vocab, compact):
    g = torch.Generator().manual_seed(0)
    track = Tracker(2)
    draw = lambda *shape: torch.randint(0, vocab, shape, generator=g)  # noqa: E731
    # pass 1: two fronts per row with a gap, and two candidates for offset 6 in row 0
    offsets = torch.tensor([[0, 1, 2, 5, 6, 6], [0, 1, 3, 4, 9, 10]])
    w, ctx = track.window(draw(2, 6), offsets, g, first=True)
    check(reference, bb, encoded, session.forward(w), w, ctx, first=1)
    session.crop(2)
    track.crop(2)
    # pass 2: fill the gaps out of order, continue a front
    w, ctx = track.window(draw(2, 4), torch.tensor([[3, 4, 7, 8], [2, 5, 6, 7]]), g)
    check(reference, bb, encoded, session.forward(w), w, ctx, first=0)
    if compact:  # reverse each row's slots: positions travel with the keys
        index = torch.arange(8).flip(0).expand(2, -1)
        assert session.compact(index)
        track.compact(index)
    # pass 3: row 1 has finished and is retired
    w, ctx = track.window(draw(2, 3), torch.tensor([[9, 10, 12], [8, 11, 12]]), g, active=torch.tensor([True, False]))
    check(reference, bb, encoded, session.forward(w), w, ctx, first=0, finished=(1,))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("cfg", [1.0, 3.0])
@pytest.mark.parametrize("compact", [False, True])
def test_hf_placed_slots_match_full_recompute(family, cfg, compact):
    bb = tiny_models.backbone(family)
    session = bb.start(PROMPTS, SamplingConfig(cfg_scale=cfg), size=tiny_models.SMALL_SIZE[family])
    assert session.supports_attention
    encoded = (session.encoded.cond, session.encoded.uncond)
    run_passes(hf_reference, bb, session, encoded, bb.vocab_size, compact)


@pytest.mark.parametrize("cfg", [1.0, 3.0])
@pytest.mark.parametrize("compact", [False, True])
def test_toy_placed_slots_match_closed_form(cfg, compact):
    bb = ToyBackbone(vocab_size=7, length=16, seed=4)
    session = bb.start(["ab", "hello"], SamplingConfig(cfg_scale=cfg))
    prompts = [bb.prompt_tokens(p) for p in ["ab", "hello"]]
    encoded = (prompts, [bb.prompt_tokens(None)] * 2 if cfg != 1.0 else None)
    run_passes(toy_reference, bb, session, encoded, bb.vocab_size, compact)
