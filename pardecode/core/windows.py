"""Windows chosen for throughput: before each pass, the window that commits most tokens per second.

A pass with window W costs what the `CostProfile` says for that many live rows, and commits
t(W) tokens per row: the profile's calibration decodes measured t at every window of its ladder
(whole decodes, so the warm-up of Jacobi iteration and the drafts that arrive fresh are in it).
Acceptance differs with the prompt, the strategy (coupled redraws, denoising) and the model's
state, so the planner keeps one online correction: the extra tokens this decode's passes really
committed, against what the calibration predicted for the windows they used, scales the
calibrated extras t(W) - 1 of every window. The planner picks the candidate with the most expected
tokens per second; AR (W = 0) is always a candidate, so an automatic window is not meaningfully
slower than AR.

Placed-slot strategies with a shape (the draft tree: window, branches, depth) are sized the same
way (`choose_shape`): each candidate shape costs a placed pass of its scored positions
(`CostProfile.placed_pass_seconds`) and commits its calibrated tokens per pass
(`CostProfile.shape_tokens`), scaled by the same online correction, learnt from the tokens each
such pass committed (`update_shaped`).

A per-position acceptance model (chain of conditional acceptances along the window) was tried
first and undervalued wide windows: a draft's chance depends on how many passes refined it, which
grows with the window, so a decode at a narrow window learns rates too low to ever widen.

Why this keeps speculative decoding exact: the window of a pass is chosen from the profile and
from passes that are over (what was committed), never from the drafts of the pass it sizes.
Speculative verification commits tokens distributed as p whatever the window and the draft
distribution are, as long as both are fixed before the pass's own random draws: the window is
one more part of the proposal, and the proposal never changes the distribution of what is
committed, only how many tokens a pass commits.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .cost import CostProfile

#: windows the planner chooses among (capped by the strategy's widest window)
CANDIDATES = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
PRIOR_PASSES = 16.0  # passes of agreement with the calibration the online correction starts from
WARMUP_PASSES = 8  # a decode's first passes with drafts do not count: Jacobi iteration is warming up


@attrs.frozen
class Shape:
    """A candidate shape of a placed-slot pass: its calibration key in `CostProfile.shape_tokens`,
    the positions it scores, and its main chain's window (costed by the single-window calibration
    where the profile has no calibration of the shape)."""

    key: str
    positions: int
    window: int


@attrs.define
class WindowPlanner:
    """Chooses each pass's window from a cost profile and the tokens this decode's passes committed."""

    profile: CostProfile
    observed: float = PRIOR_PASSES  # extra tokens per row committed (plus the prior's)
    predicted: float = PRIOR_PASSES  # extra tokens per row the calibration predicted for those passes
    passes: int = 0  # passes with drafts seen so far
    _choices: dict = attrs.field(factory=dict, repr=False)
    _costs: dict = attrs.field(factory=dict, repr=False)
    #: extra tokens the calibration predicts for the shape chosen for the pass in progress, if any
    _pending: float | None = attrs.field(default=None, repr=False)

    @property
    def scale(self) -> float:
        """How much more (> 1) or less this decode commits than the calibration predicts."""
        return self.observed / self.predicted

    def expected_tokens(self, window: int) -> float:
        """Tokens a row is expected to commit in a pass of `window` drafts."""
        return 1.0 + self.scale * (self.profile.tokens_per_pass(window) - 1.0)

    def update(self, accepted: list[int], width: int, running: list[bool]) -> None:
        """Record a pass: row b kept `accepted[b]` of `width` drafts (rows still running count)."""
        kept = [a for a, live in zip(accepted, running) if live]
        if width and kept:
            self.passes += 1
            if self.passes <= WARMUP_PASSES:
                return  # drafts start blind: early passes say little about the rest of the decode
            # per row, averaged over the batch: a pass counts once however many rows it holds
            self.observed += sum(kept) / len(kept)
            self.predicted += self.profile.tokens_per_pass(width) - 1.0

    def choose(self, rows: int, widest: int) -> int:
        """The window (<= widest) with the most expected committed tokens per second."""
        candidates = [w for w in CANDIDATES if w <= widest]
        if widest not in candidates:
            candidates.append(widest)
        key = (rows, widest, self.scale)
        if key not in self._choices:  # the same estimate gives the same choice: computed once
            self._choices[key] = max(candidates, key=lambda w: self.expected_tokens(w) / self._seconds(rows, w))
        return self._choices[key]

    def _seconds(self, rows: int, window: int) -> float:
        if (rows, window) not in self._costs:
            self._costs[rows, window] = self.profile.pass_seconds(rows, window)
        return self._costs[rows, window]

    # --- shaped placed-slot passes -------------------------------------------------------------------
    def shape_extra(self, shape: Shape) -> float:
        """Extra tokens (past the one every pass commits) the calibration predicts for `shape`."""
        calibrated = self.profile.shape_tokens.get(shape.key)
        return (calibrated if calibrated is not None else self.profile.tokens_per_pass(shape.window)) - 1.0

    def choose_shape(self, rows: int, shapes: Sequence[Shape]) -> Shape:
        """The shape with the most expected committed tokens per second at `rows` live rows; the
        pass it sizes is then learnt from by `update_shaped`."""
        key = (rows, tuple(shapes), self.scale)
        if key not in self._choices:
            self._choices[key] = max(
                shapes,
                key=lambda s: (
                    (1.0 + self.scale * self.shape_extra(s)) / self.profile.placed_pass_seconds(rows, s.positions)
                ),
            )
        chosen = self._choices[key]
        self._pending = self.shape_extra(chosen)
        return chosen

    def update_shaped(self, committed: list[int], running: list[bool]) -> None:
        """Record a pass sized by `choose_shape`: row b committed `committed[b]` tokens."""
        predicted, self._pending = self._pending, None
        kept = [c - 1 for c, live in zip(committed, running) if live]
        if predicted is None or not kept:
            return
        self.passes += 1
        if self.passes <= WARMUP_PASSES:
            return
        self.observed += sum(kept) / len(kept)
        self.predicted += predicted

    @property
    def shaped_pass_pending(self) -> bool:
        """Whether the pass in progress was sized by `choose_shape` (and awaits `update_shaped`)."""
        return self._pending is not None
