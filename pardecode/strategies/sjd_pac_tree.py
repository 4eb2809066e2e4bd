"""SJD-PAC with a draft tree (arXiv 2603.18599): several candidates for the next token, each with
its own continuation, scored in one pass under a tree mask. Lossless.

About half of SJD's passes keep a single token: the first draft is rejected, and every later draft
was conditioned on it. `sjd_pac` makes the later drafts survive that; this strategy makes the first
slot itself likelier to pass. Each pass scores, on top of the pending token:

- the main chain: `window` drafts for the next offsets, as in SJD (the Jacobi update of the last
  pass's outputs, maximally coupled with the drafts they replace; fresh slots are drafted from the
  pass's furthest prediction, as `sjd_pac`'s proactive drafting);
- `branches - 1` sibling candidates for the first offset: the most likely tokens of the
  distribution q the main chain's first draft was drawn from (`siblings="top"`), or independent
  draws from it (`"sampled"`), each followed by the main chain's next `depth` drafts; a sibling's
  slots see the pending token and their own branch only (the tree mask).

Verification: the K candidates of the first offset go through recursive rejection sampling
(`core.verify.multi_draft_accept`: exact when each candidate, given the ones before it, follows
the q it is tested with: q for the main draft and sampled siblings, one-hot for fixed ones); the branch of the kept
candidate is then verified as SJD verifies a window (min(1, p/q) on its drafts, against p computed
under that branch's own prefix), with the residual correction or the bonus after it. If no
candidate passes, the first offset takes the residual draw of the recursion. The tail drafts were
drawn before this pass from known q, independently of the candidates, so every step stays exact;
the loop checks that every committed token came from a slot whose context is all committed.

Every draft carries an explicit q (the first pass drafts uniformly over the allowed tokens), since
the siblings come from the first draft's q.

`window="auto"` sizes the whole tree before each pass: the loop's planner (`core.windows`) picks,
among `TREE_SHAPES` within the caps `branches` and `depth` (and `AUTO_WIDEST`), the (window,
branches, depth) with the most expected committed tokens per second: a placed pass of that many
positions from the cost profile, the shape's calibrated tokens per pass, and the online correction
from the passes already finished. The shape depends on finished passes only, never on this pass's
drafts, so verification stays exact. A narrower window drops the drafts past it; a wider one drafts
its new slots from the last pass's furthest prediction (uniformly before any pass), that q kept.
"""

from __future__ import annotations

import attrs
import torch

from ..core.claims import Claim
from ..core.fronts import Commits
from ..core.strategy import (
    AUTO_WIDEST,
    DecodeContext,
    Proposal,
    Strategy,
    non_negative_int,
    one_of,
    positive_int,
    window_size,
)
from ..core.verify import (
    acceptance_probability,
    correction_distribution,
    first_false,
    multi_draft_accept,
    residual_distribution,
    sample,
    sample_with,
    take_per_row,
    uniforms,
)
from ..core.windows import Shape
from .drafting import restricted

SIBLINGS = ("top", "sampled")
#: the (window, branches, depth) an automatic tree chooses among: a handful, each calibrated by one
#: whole decode (`pardecode.planning`); every window has a chain without siblings, so any caps leave some
TREE_SHAPES = ((4, 1, 0), (8, 1, 0), (8, 2, 2), (16, 1, 0), (16, 2, 2), (16, 4, 2), (32, 1, 0), (32, 4, 4))


def tree_positions(window: int, branches: int, depth: int) -> int:
    """Positions a pass of this tree scores: the pending token, the main chain, the siblings' branches."""
    return 1 + window + (branches - 1) * (min(depth, window - 1) + 1)


def shape_key(window: int, branches: int, depth: int) -> str:
    """The tree shape's calibration key in `CostProfile.shape_tokens`."""
    return f"sjd_pac_tree:{window}x{branches}x{depth}"


def shape_of(key: str) -> tuple[int, int, int]:
    """(window, branches, depth) of a `shape_key`."""
    window, branches, depth = (int(n) for n in key.rsplit(":", 1)[1].split("x"))
    return window, branches, depth


@attrs.define
class SJDPACTree(Strategy):
    """SJD-PAC with `branches` candidates for the next token, each with `depth` drafts after it.

    With `window="auto"` the shape is chosen before each pass, `branches` and `depth` being the
    most it may take."""

    name = "sjd_pac_tree"
    claim = Claim.exact()

    #: main-chain drafts per pass, or "auto": the whole tree sized per pass for throughput
    window: int | str = attrs.field(default=32, validator=window_size())
    branches: int = attrs.field(default=4, validator=positive_int("branches"))
    depth: int = attrs.field(default=4, validator=non_negative_int)
    #: "top": the siblings are the most likely tokens of q other than the main draft (fixed before
    #: the pass, q one-hot on each); "sampled": i.i.d. draws from q
    siblings: str = attrs.field(default="top", validator=one_of(SIBLINGS))
    _drafts: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)  # Long[B, W]
    _q: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)  # Float[B, W, V]
    _trees: dict = attrs.field(factory=dict, init=False, repr=False)  # (shape, pending, device) -> _tree
    #: the shape of the pass in progress: (window, branches, depth)
    _shape: tuple[int, int, int] = attrs.field(default=(0, 0, 0), init=False, repr=False)
    #: Float[B, 1, V]: the last pass's furthest prediction, which new slots of a wider window are drafted from
    _latest: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _candidates: tuple[Shape, ...] | None = attrs.field(default=None, init=False, repr=False)  # candidate_shapes()

    def reset(self, ctx: DecodeContext) -> None:
        self._drafts = self._q = self._latest = None

    def candidate_shapes(self) -> list[Shape]:
        """The shapes an automatic tree chooses among: `TREE_SHAPES` within the caps."""
        return [
            Shape(shape_key(w, b, d), tree_positions(w, b, d), w)
            for w, b, d in TREE_SHAPES
            if w <= AUTO_WIDEST and b <= self.branches and (b == 1 or d <= self.depth)
        ]

    def _choose_shape(self, ctx: DecodeContext) -> tuple[int, int, int]:
        if self.window != "auto":
            return self.window, self.branches, self.depth
        if self._candidates is None:  # the caps never change: built once
            self._candidates = tuple(self.candidate_shapes())
        shapes = self._candidates
        return shape_of((ctx.shape_planner(shapes) if ctx.shape_planner is not None else shapes[-1]).key)

    @property
    def _w(self) -> int:  # the main chain's drafts this pass
        return self._shape[0]

    @property
    def _branches(self) -> int:
        return self._shape[1]

    @property
    def _tail(self) -> int:  # drafts after a sibling candidate (they reuse the main chain's)
        return min(self._shape[2], self._w - 1)

    def _fit(self, ctx: DecodeContext, w: int) -> None:
        """Drafts and their q for exactly `w` slots: cut past it, or new slots drafted from the last
        pass's furthest prediction (uniformly before any pass) restricted to the layout, q explicit."""
        have = self._drafts.shape[1]
        if w < have:
            self._drafts, self._q = self._drafts[:, :w], self._q[:, :w]
        elif w > have:
            b, v = ctx.batch, ctx.vocab_size
            source = self._latest if self._latest is not None else torch.ones(b, 1, v, device=ctx.device)
            q = restricted(source.expand(-1, w - have, -1), ctx.allowed(w - have, start=have))
            self._drafts = torch.cat([self._drafts, sample(q, ctx.generator)], 1)
            self._q = torch.cat([self._q, q], 1)

    def _tree(self, pending: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(rel Long[S]: offset of each slot relative to the first uncommitted one, sees Bool[S, S]).

        Slots: the pending token (rel -1, when there is one), the main chain (rel 0..W-1), then per
        sibling its candidate (rel 0) and its tail (rel 1..depth). A slot sees the pending token
        and the earlier slots of its own branch.
        """
        key = (self._shape, pending, str(device))
        if key in self._trees:
            return self._trees[key]
        w, d, branches = self._w, self._tail, self._branches
        rel = [-1] * pending + list(range(w)) + list(range(d + 1)) * (branches - 1)
        branch = [-1] * pending + [0] * w + [k for k in range(1, branches) for _ in range(d + 1)]
        rel_t, branch_t = torch.tensor(rel, device=device), torch.tensor(branch, device=device)
        same = (branch_t[:, None] == branch_t[None, :]) & (rel_t[None, :] < rel_t[:, None])
        root = (branch_t[None, :] == -1) & (branch_t[:, None] != -1)
        self._trees[key] = rel_t, same | root
        return self._trees[key]

    def _siblings(self, ctx: DecodeContext) -> torch.Tensor:
        """Long[B, K-1]: the other candidates for the first offset (see `siblings`)."""
        q0, siblings = self._q[:, 0], self._branches - 1
        if self.siblings == "sampled":
            return sample(q0.unsqueeze(1).expand(-1, siblings, -1), ctx.generator)
        others = q0.scatter(1, self._drafts[:, :1], -1.0)  # never the main draft again
        top = others.topk(min(siblings, others.shape[1]), dim=1).indices
        return torch.cat([top, top[:, :1].expand(-1, siblings - top.shape[1])], 1)  # tiny vocabularies

    def _entry(self, branch: torch.Tensor, rel: torch.Tensor, base: int) -> torch.Tensor:
        """Long[B, n]: the p entry of the slot at `rel` on `branch` (Long[B, 1]; 0 is the main chain)."""
        sibling = base + self._w + (branch - 1) * (self._tail + 1) + rel
        return torch.where(branch == 0, base + rel, sibling)

    def propose(self, ctx: DecodeContext) -> Proposal:
        first = ctx.done is None
        # the shape from finished passes only (the planner never sees this pass's drafts)
        self._shape = self._choose_shape(ctx)
        b, w, v = ctx.batch, self._w, ctx.vocab_size
        if self._drafts is None:  # uniform over the allowed tokens, with that q made explicit
            allowed = ctx.allowed(w)
            self._q = restricted(torch.ones(b, w, v, device=ctx.device), allowed)
            self._drafts = sample(self._q, ctx.generator)
        elif self._drafts.shape[1] != w:  # an automatic shape changed the window
            self._fit(ctx, w)
        siblings = self._siblings(ctx)
        tail = self._drafts[:, 1 : 1 + self._tail]
        parts = [self._drafts] + [torch.cat([siblings[:, k : k + 1], tail], 1) for k in range(self._branches - 1)]
        if not first:
            parts.insert(0, ctx.tokens.gather(1, (ctx.committed - 1).clamp(min=0).unsqueeze(1)))
        tokens = torch.cat(parts, 1)
        rel, sees = self._tree(0 if first else 1, ctx.device)
        offsets = ctx.committed.unsqueeze(1) + rel
        offsets = torch.where((offsets < ctx.length) & (ctx.committed < ctx.length).unsqueeze(1), offsets, -1)
        used = offsets >= 0
        attends = sees & used[:, :, None] & used[:, None, :]
        return Proposal(tokens, offsets=offsets, attends=attends)

    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Commits:
        first = ctx.step == 0
        b, w, v = ctx.batch, self._w, ctx.vocab_size
        head_entry = 0 if first else 1  # the prompt's p at the first pass, else the pending token's
        base = head_entry + 1  # p entry of the main chain's first slot
        n, drafts, q = ctx.committed, self._drafts, self._q
        gen = ctx.generator

        # the first offset: the main draft and the siblings, recursive rejection against q
        candidates = torch.cat([drafts[:, :1], proposal.tokens[:, base - 1 + w :: self._tail + 1]], 1)
        given = None
        if self.siblings == "top":  # the main draft was drawn from q; the siblings are fixed tokens
            given = torch.ones_like(candidates, dtype=torch.bool)
            given[:, 0] = False
        chosen, head = multi_draft_accept(p[:, head_entry], candidates, q[:, 0], gen, given)

        # the kept candidate's branch (the main chain if none was kept) verified as a window
        branch = chosen.clamp(min=0).unsqueeze(1)
        rel = torch.arange(w, device=ctx.device)
        entry = self._entry(branch, rel, base).clamp(max=p.shape[1] - 1)  # [B, W]: p for offset n+1+rel
        pb = p.gather(1, entry.unsqueeze(-1).expand(-1, -1, v))
        length = torch.where(branch == 0, w - 1, self._tail)
        valid = (rel[: w - 1] < length) & ((n.unsqueeze(1) + 1 + rel[: w - 1]) < ctx.length)
        tail, tail_q = drafts[:, 1:], q[:, 1:]
        keep = acceptance_probability(pb, tail, tail_q) * valid
        accepted = first_false(torch.rand(keep.shape, generator=gen, device=ctx.device) < keep)
        dist = correction_distribution(pb, tail, tail_q, accepted)
        dist = torch.where((accepted >= valid.sum(1)).unsqueeze(1), take_per_row(pb, accepted), dist)  # bonus
        after = sample(dist, gen)

        # commits: the first offset, then (if a candidate was kept) its accepted drafts and one more
        m = torch.arange(w + 1, device=ctx.device)
        kept = chosen >= 0
        run = accepted.unsqueeze(1)
        pad = tail.new_zeros(b, 1)
        tail_at = torch.cat([pad, tail, pad], 1)  # entry m holds the draft at offset n + m
        tokens = torch.where(m == 0, head.unsqueeze(1), torch.where(m <= run, tail_at, after.unsqueeze(1)))
        offsets = n.unsqueeze(1) + m
        use = (n < ctx.length).unsqueeze(1) & (offsets < ctx.length) & ((m == 0) | (kept.unsqueeze(1) & (m <= run + 1)))
        source = torch.cat([torch.full_like(n.unsqueeze(1), head_entry), entry], 1)  # offset n + m from slot m - 1

        self._advance(ctx, p, drafts, q, torch.where(kept, accepted + 2, 1), branch, base)
        return Commits(torch.where(use, offsets, -1), tokens, source)

    def _advance(self, ctx, p, drafts, q, shift, branch, base) -> None:
        """Next drafts: for each next offset, a draw from the newest prediction of it (the kept branch,
        else the main chain), maximally coupled with the draft it replaces; fresh slots are drafted
        from the pass's furthest prediction. Each draft's q is the distribution it was drawn from."""
        w, v = self._w, ctx.vocab_size
        rel = shift.unsqueeze(1) + torch.arange(w, device=ctx.device)  # new slots, relative to the old start
        source = rel - 1  # the slot whose output predicts each new slot's offset
        reach = torch.where(branch == 0, w - 1, self._tail)
        entry = torch.where(source <= reach, self._entry(branch, source, base), base + source)
        has_source = source <= w - 1
        src_p = p.gather(1, entry.clamp(max=p.shape[1] - 1).unsqueeze(-1).expand(-1, -1, v))
        has_prev = rel < w
        at = rel.clamp(max=w - 1)
        prev = drafts.gather(1, at)
        prev_q = q.gather(1, at.unsqueeze(-1).expand(-1, -1, v))
        stay = torch.rand(prev.shape, generator=ctx.generator, device=ctx.device) < acceptance_probability(
            src_p, prev, prev_q
        )
        latest = p[:, base + w - 1 : base + w]  # the main chain's last prediction
        if self.window == "auto":  # a wider window next pass drafts its new slots from it
            self._latest = latest.clone()
        fresh_q = restricted(latest.expand(-1, w, -1), ctx.allowed(w, start=shift))
        # each slot keeps one of three draws (the residual's, src_p's, fresh_q's): their uniforms are
        # drawn in that order as three samples would, but one inverse CDF runs, on the kept ones
        u_residual, u_source, u_fresh = (uniforms(src_p, ctx.generator) for _ in range(3))
        redraw = has_prev.view(-1, 1)
        u = torch.where(has_source.view(-1, 1), torch.where(redraw, u_residual, u_source), u_fresh)
        dist = torch.where(has_prev.unsqueeze(-1), residual_distribution(src_p, prev_q), src_p)
        self._q = torch.where(has_source.unsqueeze(-1), src_p, fresh_q)
        drawn = sample_with(torch.where(has_source.unsqueeze(-1), dist, fresh_q), u)
        self._drafts = torch.where(has_source & has_prev & stay, prev, drawn)
