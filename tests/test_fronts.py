"""The loop's placed-slot path (core.fronts): same tokens as the single window when used as one,
and a clear refusal for every way a strategy could bend the contract."""

from __future__ import annotations

import attrs
import pytest
import torch
from fronts_helpers import Placed

from pardecode import ConfigError, SamplingConfig, decode, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.fronts import Commits, pending
from pardecode.core.strategy import DecodeContext, Proposal, Strategy

PROMPTS = ["ab", "x", "hello"]


@pytest.mark.parametrize(
    "name,options,sampling",
    [
        ("ar", {}, SamplingConfig()),
        ("ar", {}, SamplingConfig(cfg_scale=2.0, top_k=3)),
        ("jacobi", {"window": 6}, SamplingConfig(temperature=0)),
        ("sjd", {"window": 5}, SamplingConfig()),
        ("sjd", {"window": 7, "init": "repeat"}, SamplingConfig(cfg_scale=2.0, top_p=0.9)),
        ("sjd", {"window": 9, "coupling": "gumbel"}, SamplingConfig(temperature=0.8)),
    ],
)
@pytest.mark.parametrize("grid", [None, (4, 5)])
def test_a_window_placed_explicitly_decodes_the_same_tokens(name, options, sampling, grid):
    """One window written as placed slots: the same p, the same draws, so the same tokens and passes
    (rows advance by different amounts: holes, crops and compaction on the placed path too)."""
    bb = ToyBackbone(vocab_size=6, length=40, grid=grid, seed=1)
    for seed in (0, 1):
        plain = decode(bb, get_strategy(name, **options), PROMPTS, sampling=sampling, seed=seed)
        placed = decode(bb, Placed(get_strategy(name, **options)), PROMPTS, sampling=sampling, seed=seed)
        assert torch.equal(plain.tokens, placed.tokens)
        assert plain.trace.widths == [w - (i > 0) for i, w in enumerate(placed.trace.widths)]
        assert torch.equal(plain.trace.committed, placed.trace.committed)


@attrs.define
class Scripted(Strategy):
    """Plays fixed proposals and commits (one per pass) to probe the loop's checks."""

    script: list = attrs.field(factory=list)
    lossless_flag: bool = True
    approx: str | None = None
    name = "scripted"

    @property
    def lossless(self):  # noqa: D102
        return self.lossless_flag

    @property
    def approximation(self):  # noqa: D102
        return self.approx

    def propose(self, ctx: DecodeContext) -> Proposal:
        tokens, offsets, attends = self.script[ctx.step][0]
        t = torch.tensor([tokens]).long()
        return Proposal(
            t, offsets=torch.tensor([offsets]).long(), attends=None if attends is None else torch.tensor([attends])
        )

    def verify(self, ctx, proposal, p) -> Commits:
        offs, toks, src = self.script[ctx.step][1]
        return Commits(torch.tensor([offs]).long(), torch.tensor([toks]).long(), torch.tensor([src]).long())


def run(script, **kw):
    bb = ToyBackbone(vocab_size=4, grid=(2, 3), seed=0)  # offsets 3 and 7 end-of-line, 8 end
    return decode(bb, Scripted(script, **kw), ["ab"], sampling=SamplingConfig(temperature=0))


# pass 0: prompt -> offset 0; also slots at 0 and 1 (drafts); commit 0 (prompt) and the forced EOL at 3
P0 = (([1, 0], [0, 1], None), ([0, 3], [1, 2], [0, -1]))


def test_out_of_order_commits_and_forced_tokens_are_accepted():
    # pass 1: feed offsets 0 and 3; commit offset 1 from slot 0 (complete) and the row-2 cell 4 from EOL
    # (incomplete: it misses offsets 1, 2, so only an approximation may)
    script = [P0, (([1, 2], [0, 3], None), ([1, 4], [0, 1], [1, 2]))]
    with pytest.raises(ConfigError, match="context was not all committed; a lossless strategy may not"):
        run(script)
    with pytest.raises(ConfigError, match="must name its `approximation`"):
        run(script, lossless_flag=False)
    script += [(([0, 1], [1, 4], None), ([2, 5, 6], [0, 0, 0], [1, 2, -1]))]
    with pytest.raises(ConfigError, match="layout does not force"):
        run(script, lossless_flag=False, approx="test")


def test_every_contract_violation_is_refused_with_a_clear_error():
    cases = [
        ([(([1], [0], [[True]]), ([0], [1], [0]))], "attend to slot 0"),
        ([(([1, 0], [1, 0], [[False, False], [True, False]]), ([0], [1], [0]))], "smaller offsets"),
        ([(([1], [9], None), ([0], [1], [0]))], "outside the span"),
        ([(([1], [0], None), ([0, 0], [1, 1], [0, 0]))], "twice in one pass"),
        ([(([1], [0], None), ([0], [3], [0]))], "layout forbids"),
        ([(([1], [0], None), ([2], [1], [1]))], "other than its source slot"),
        ([(([1], [0], None), ([1], [1], [0]))], "prompt's p at an offset other than 0"),
        ([P0, (([2], [0], None), ([1], [1], [1]))], "fed token 2 at committed offset 0"),
        ([P0, (([1], [0], None), ([0], [1], [1]))], "already committed"),
        ([P0, (([1], [0], None), ([1], [1], [0]))], "only the first pass fills"),
    ]
    for script, message in cases:
        with pytest.raises(ConfigError, match=message):
            run(script)


def test_every_malformed_commit_is_refused_with_its_own_message():
    """Each pass folds its checks into one reduction; a refused pass still names what was wrong."""
    cases = [
        ([(([1], [0], None), ([9], [1], [1]))], "committed past the span's 9 offsets"),
        ([(([1], [0], None), ([0], [4], [0]))], r"committed token ids outside \[0, 4\)"),
        ([(([1], [0], None), ([0], [-1], [0]))], r"committed token ids outside \[0, 4\)"),
        ([(([1], [0], None), ([1], [1], [2]))], r"named a source outside -1\.\.1"),
        ([(([1], [0], None), ([1], [1], [-2]))], r"named a source outside -1\.\.1"),
        ([(([1], [-1], None), ([1], [1], [1]))], "other than its source slot"),
        ([(([1], [0], None), ([0], [0], [-1]))], "layout does not force"),
        ([(([1], [0], None), ([0, 3], [1, 0], [0, -1]))], "layout forbids"),
        ([(([5], [0], None), ([0], [1], [0]))], r"proposed token ids outside \[0, 4\)"),
        ([(([1, 1], [0, 0], None), ([0, 1, 1], [1, 1, 1], [0, 1, 2]))], "offset 1 of row 0 twice"),
    ]
    for script, message in cases:
        with pytest.raises(ConfigError, match=message):
            run(script)


def test_commits_of_the_wrong_kind_or_batch_and_forced_tokens_without_a_grid_are_refused():
    @attrs.define
    class Answers(Scripted):
        answer: object = None

        def verify(self, ctx, proposal, p):
            return self.answer

    bb = ToyBackbone(vocab_size=4, grid=(2, 3), seed=0)
    empty = torch.zeros(2, 0, dtype=torch.long)
    for answer, message in [
        (None, "answered placed slots with a NoneType"),
        (Commits(empty, empty, empty), "committed for 2 rows of a batch of 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            decode(bb, Answers([P0], answer=answer), ["ab"], sampling=SamplingConfig(temperature=0))
    plain = ToyBackbone(vocab_size=4, length=6, seed=0)  # no layout: nothing is forced
    with pytest.raises(ConfigError, match="this layout forces none"):
        decode(plain, Scripted([(([1], [0], None), ([0], [1], [-1]))]), ["ab"], sampling=SamplingConfig(temperature=0))


def test_twins_and_re_fed_tokens_keep_the_completeness_check():
    """Two slots at one offset both seen by a third: its context holds that offset twice, so a
    lossless commit from it is refused; seen once (the other twin hidden) it is accepted."""
    # pass 1 feeds offset 0 again twice (slots 0 and 1) and a draft at offset 1 (slot 2)
    twice = [P0, (([1, 1, 0], [0, 0, 1], [[False] * 3, [False] * 3, [True, True, False]]), ([1, 2], [0, 0], [1, 3]))]
    with pytest.raises(ConfigError, match="offset 2 of row 0 from a distribution whose context was not all committed"):
        run(twice)
    once = [P0, (([1, 1, 0], [0, 0, 1], [[False] * 3, [False] * 3, [True, False, False]]), ([1, 2], [0, 0], [1, 3]))]
    with pytest.raises(IndexError):  # accepted; the script then ends before the span does
        run(once)


def test_placed_then_plain_is_refused():
    @attrs.define
    class Switches(Scripted):
        def propose(self, ctx):
            return super().propose(ctx) if ctx.step == 0 else Proposal(torch.zeros(1, 0, dtype=torch.long))

    bb = ToyBackbone(vocab_size=4, grid=(2, 3), seed=0)
    with pytest.raises(ConfigError, match="every later proposal must give offsets"):
        decode(bb, Switches([P0]), ["ab"], sampling=SamplingConfig(temperature=0))


def test_proposal_fields_are_validated_on_construction():
    t = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ConfigError, match="offsets must be"):
        Proposal(t, offsets=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match="attends needs"):
        Proposal(t, attends=torch.zeros(2, 3, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="attends must be"):
        Proposal(t, offsets=t, attends=torch.zeros(2, 3, 3))
    with pytest.raises(ConfigError, match="Commits.tokens is"):
        Commits(t, t[:, :1], t)


def test_pending_lists_committed_tokens_the_cache_lacks():
    ctx = attrs.make_class("C", ["done", "cached", "tokens"])(
        torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0]], dtype=torch.bool),
        torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool),
        torch.tensor([[5, 6, 7, 8], [1, 2, 3, 4]]),
    )
    offs, toks = pending(ctx)
    assert offs.tolist() == [[1, 3], [-1, -1]] and toks.tolist() == [[6, 8], [1, 1]]


def test_front_columns_packs_marked_columns_in_order_as_a_stable_sort_would():
    from pardecode.core.fronts import front_columns

    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        marked = torch.rand(3, 12, generator=gen) < torch.rand(1, generator=gen)
        count = marked.sum(1)
        width = int(count.max())
        order = torch.sort((~marked).to(torch.uint8), dim=1, stable=True).indices[:, :width]
        want = torch.where(torch.arange(width) < count.unsqueeze(1), order, -1)
        assert torch.equal(front_columns(marked), want)


@pytest.mark.parametrize("family", ["chameleon", "emu3"])
@pytest.mark.parametrize(
    "name,options,lossy",
    [
        ("zipar", {"window": 4}, {"window": 1}),
        ("pjd", {"rows": 1, "window": 3}, {}),
    ],
)
def test_row_parallel_at_the_exact_knob_is_greedy_ar_on_hf_families(family, name, options, lossy):
    """At temperature 0 the exact end of each knob reproduces greedy AR through a real session
    (4x4 grids: zipar's window 4 waits for whole rows); the lossy end still yields a valid image."""
    import tiny_models

    bb = tiny_models.backbone(family)
    size, sampling = tiny_models.SMALL_SIZE[family], SamplingConfig(temperature=0, cfg_scale=3.0)
    ar = decode(bb, "ar", ["a red dress", "an ankle boot with laces"], sampling=sampling, size=size)
    exact = decode(
        bb, get_strategy(name, **options), ["a red dress", "an ankle boot with laces"], sampling=sampling, size=size
    )
    assert torch.equal(exact.tokens, ar.tokens) and exact.forward_passes < ar.forward_passes
    lossy = decode(
        bb, get_strategy(name, **lossy), ["a red dress", "an ankle boot with laces"], sampling=sampling, size=size
    )
    assert bool(lossy.session.layout.is_valid(lossy.tokens).all()) and lossy.forward_passes < exact.forward_passes


@pytest.mark.parametrize(
    "name,exact,lossy",
    [
        ("zipar", {"window": 4}, [{"window": 1}, {"window": 2}]),
        ("pjd", {"rows": 1, "window": 3}, [{}, {"mask": "causal"}, {"window": 2, "lag": 2}]),
    ],
)
def test_row_parallel_on_janus_image_only_spans(name, exact, lossy):
    """Janus' span is rows x cols image tokens and nothing else (no end-of-line starts a row). At
    the exact knob greedy decoding is greedy AR; the lossy end (a row's first cell read from a
    stand-in for the last cell above) still yields valid images in fewer passes than AR."""
    import tiny_models

    bb = tiny_models.backbone("janus")
    size, prompts = tiny_models.SMALL_SIZE["janus"], ["a red dress", "an ankle boot with laces"]
    greedy = SamplingConfig(temperature=0, cfg_scale=3.0)
    ar = decode(bb, "ar", prompts, sampling=greedy, size=size)
    result = decode(bb, get_strategy(name, **exact), prompts, sampling=greedy, size=size)
    assert torch.equal(result.tokens, ar.tokens) and result.forward_passes <= ar.forward_passes
    for options in lossy:
        for sampling in (greedy, bb.default_sampling):
            result = decode(bb, get_strategy(name, **options), prompts, sampling=sampling, size=size, seed=1)
            assert bool(result.session.layout.is_valid(result.tokens).all())
            assert result.forward_passes < ar.forward_passes, options


@pytest.mark.parametrize(
    "name,options", [("zipar", {"window": 1}), ("pjd", {"lag": 1, "window": 2}), ("pjd", {"mask": "causal"})]
)
def test_an_image_only_row_started_early_reads_a_stand_in_only_its_own_row_sees(name, options):
    """Row 1 of a 2x3 image-only grid starts once row 0 has one cell: the slot before its first cell
    (row 0's last cell, not committed) holds row 0's newest committed cell, no other row's slot
    attends to it, and the first cell of row 1 is drawn from it."""
    from pardecode.strategies.pjd import PJD
    from pardecode.strategies.zipar import ZipAR

    base = {"zipar": ZipAR, "pjd": PJD}[name]
    seen = []

    @attrs.define
    class Spy(base):
        def propose(self, ctx):
            proposal = super().propose(ctx)
            if ctx.done is not None:  # pjd: the slot each row front reads its next token from
                inputs = self._pass["entries"][:, :, 0] - 1 if name == "pjd" else None
                seen.append((proposal, ctx.done.clone(), ctx.tokens.clone(), inputs))
            return proposal

    bb = ToyBackbone(vocab_size=5, grid=(2, 3), image_only=True, seed=3)
    result = decode(bb, Spy(**options), ["ab", "xyz"], seed=0)
    assert bool(bb.layout().is_valid(result.tokens).all()) and result.forward_passes < 6
    found = 0
    for proposal, done, tokens, inputs in seen:
        offsets, attends = proposal.offsets, proposal.attends
        # slots at row 0's last cell before it is committed: zipar feeds only the stand-in there,
        # pjd also row 0's draft, which row 1's slots must not see next to the stand-in
        at = (offsets == 2) & ~done[:, 2:3]
        if inputs is not None:
            at &= (torch.arange(offsets.shape[1])[None, :, None] == inputs[:, None, :]).any(2)
            drafts_at_2 = (offsets == 2) & ~done[:, 2:3] & ~at & at.any(1, keepdim=True)  # next to a stand-in
            row1 = offsets >= 3
            assert not bool((attends & row1.unsqueeze(2) & drafts_at_2.unsqueeze(1)).any())
        for b in range(offsets.shape[0]):
            if bool(at[b].any()):
                found += 1
                assert int(at[b].sum()) == 1
                j = int(at[b].nonzero()[0])
                assert int(proposal.tokens[b, j]) == int(tokens[b, int(done[b, :3].sum()) - 1])  # row 0's newest
                pending_slots = (offsets[b] >= 0) & done[b].gather(0, offsets[b].clamp(min=0))
                assert attends is not None and not bool((attends[b, :, j] & pending_slots).any())
    assert found == 2  # once per batch row


@pytest.mark.parametrize("name", ["zipar", "pjd"])
def test_row_parallel_strategies_refuse_a_span_without_a_grid(name):
    with pytest.raises(
        ConfigError,
        match=f"strategy '{name}' decodes image rows in parallel; backbone 'toy' has a span with no image grid$",
    ):
        decode(ToyBackbone(length=8), get_strategy(name), ["ab"])


@pytest.mark.parametrize("name", ["zipar", "pjd"])
def test_row_parallel_strategies_refuse_a_grid_with_unforced_gaps(name):
    """A grid whose rows are separated by tokens no end-of-line forces (a layout of one's own) is
    refused in one line rather than decoded wrongly."""
    from pardecode.core.layout import FreeLayout, Grid

    class Gapped(FreeLayout):
        def image_grid(self):
            return Grid(2, 3, stride=4, length=self.length)

    @attrs.define(eq=False)
    class GappedToy(ToyBackbone):
        def layout(self):
            return Gapped(8)

    with pytest.raises(
        ConfigError,
        match=f"^strategy '{name}' decodes rows closed by an end-of-line or image-only spans; "
        "backbone 'toy' has a 2x3 grid at offset 0, stride 4, in a span of 8$",
    ):
        decode(GappedToy(length=8), get_strategy(name), ["ab"])


def test_a_cached_token_fed_again_replaces_its_cached_copy():
    """Offset 0 is cached at pass 1 and fed again at pass 2: the slot at offset 1 sees it once, so
    its context is whole (a lossless commit from it is accepted) and its p is the closed form's."""
    script = [
        (([], [], None), ([0], [1], [0])),
        (([1], [0], None), ([1], [0], [1])),
        (([1, 0], [0, 1], None), ([2], [0], [2])),
    ]
    seen = []

    @attrs.define
    class Recording(Scripted):
        def verify(self, ctx, proposal, p):
            seen.append(p)
            return super().verify(ctx, proposal, p)

    bb = ToyBackbone(vocab_size=4, grid=(2, 3), seed=0)  # cells hold 0 or 1; offset 3 is end-of-line
    with pytest.raises(IndexError):  # the script stops before the span ends; what matters has run
        decode(bb, Recording(script), ["ab"], sampling=SamplingConfig(temperature=0))
    history = torch.tensor([bb.prompt_tokens("ab") + [1, 0]])
    logits = bb.logits_of(history, torch.ones_like(history, dtype=torch.bool))[0, -1]
    best = logits.masked_fill(~bb.layout().allowed(torch.tensor(2)), float("-inf")).argmax()
    torch.testing.assert_close(seen[2][0, 2], torch.nn.functional.one_hot(best, 4).float())


@pytest.mark.parametrize("options", [{}, {"mask": "causal", "window": 3}, {"lag": 2, "ahead": 1}, {"rows": 2}])
def test_pjd_variants_decode_valid_grids_in_fewer_passes(options):
    bb = ToyBackbone(vocab_size=6, grid=(5, 6), seed=2)
    result = decode(bb, get_strategy("pjd", **options), PROMPTS, seed=4)
    assert bool(bb.layout().is_valid(result.tokens).all()) and result.forward_passes < bb.layout().length // 2


@pytest.mark.parametrize("options", [{"mask": "causal", "window": 3}, {"mask": "causal", "lag": 2, "ahead": 1}, {}])
def test_pjd_fed_committed_tokens_see_no_draft_and_causal_drafts_see_only_what_they_wait_for(options):
    """A committed token fed again is cached with the keys of this pass: it must not see a draft (one
    the row above rejects would stay in its keys for good). A causal draft at column c sees the drafts
    of the row d rows up only at columns <= c + d * (lag - ahead): the ones its next cell waits for."""
    strategy = get_strategy("pjd", **options)
    bb = ToyBackbone(vocab_size=6, grid=(5, 6), seed=2)
    stride, checked = 7, []

    class Watched(type(strategy)):
        def propose(self, ctx):
            proposal = super().propose(ctx)
            if ctx.done is not None and proposal.attends is not None:
                offs, sees = proposal.offsets, proposal.attends
                at = offs.clamp(min=0)
                committed = (offs >= 0) & ctx.done.gather(1, at)
                draft = (offs >= 0) & ~committed
                assert not bool((sees & committed[:, :, None] & draft[:, None, :]).any())
                row, col = at // stride, at % stride
                up = row[:, :, None] - row[:, None, :]
                other_row = draft[:, :, None] & draft[:, None, :] & (up > 0)
                lag, ahead = self.lag, self.ahead
                assert not bool((sees & other_row & (col[:, None, :] > col[:, :, None] + up * (lag - ahead))).any())
                checked.append(bool((sees & other_row).any()))
            return proposal

    result = decode(bb, Watched(**options), PROMPTS, seed=4)
    assert bool(bb.layout().is_valid(result.tokens).all())
    assert checked and any(checked) == (options.get("mask") == "causal")  # causal drafts did see rows above
