"""Windows chosen for throughput: before each pass, the window that commits most tokens per second.

A window of W drafts commits 1 + a_1 + a_1 a_2 + ... + a_1...a_W tokens per row on average, where
a_j is the chance that the j-th draft is accepted once the drafts before it were; the pass costs
what the `CostProfile` says for that many live rows and that window. The planner estimates a_j
online from the passes of this decode (a prior from the profile's own runs counts for the first
few), and picks the candidate W with the most expected tokens per second. AR (W = 0) is always a
candidate, so an automatic window is not meaningfully slower than AR.

Why this keeps speculative decoding exact: the window of a pass is chosen from the profile and
from passes that are over (what was committed, what was accepted), never from the drafts of the
pass it sizes. Speculative verification commits tokens distributed as p whatever the window and
the draft distribution are, as long as both are fixed before the pass's own random draws: the
window is then one more part of the proposal, and the proposal never changes the distribution
of what is committed, only how many tokens a pass commits.
"""

from __future__ import annotations

import attrs
import numpy as np

from .cost import CostProfile

#: windows the planner chooses among (capped by the strategy's widest window)
CANDIDATES = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
PRIOR_WEIGHT = 64.0  # passes the profile's whole-decode acceptance counts as: the first passes of a decode (Jacobi iterations warming up) must not talk it out of the windows that pay off over the whole span


class AcceptanceStats:
    """Per window position j: how often a carried-over draft at j was tested, and kept (per pass,
    averaged over the rows still running).

    Only drafts the previous pass refined count (slot j of row b is one when j < previous width -
    previous accepted of b, the Jacobi carry-over): a fresh draft is a blind guess whatever the
    window, and counting those would make a window that was just widened look useless.
    """

    def __init__(self, prior: list[float] | None = None, weight: float = PRIOR_WEIGHT):
        self.prior, self.weight = prior or [], weight
        self.reached = np.zeros(0)
        self.kept = np.zeros(0)
        self._refined: list[int] | None = None  # per row: slots of the next window carried over

    def _grow(self, size: int) -> None:
        have = len(self.reached)
        if have < size:
            j = np.minimum(np.arange(have, size), len(self.prior) - 1)
            rate = np.asarray(self.prior, dtype=float)[j] if self.prior else np.full(size - have, 0.5)
            self.reached = np.concatenate([self.reached, np.full(size - have, self.weight)])
            self.kept = np.concatenate([self.kept, self.weight * rate])

    def update(self, accepted: list[int], width: int, running: list[bool]) -> None:
        """Record a pass: row b kept `accepted[b]` of `width` drafts (only rows still running count)."""
        refined, self._refined = self._refined, [max(width - a, 0) for a in accepted]
        if not width or refined is None:
            return
        self._grow(width)
        rows = [b for b, live in enumerate(running) if live]
        kept = np.asarray([accepted[b] for b in rows])[None]
        carried = np.asarray([refined[b] for b in rows])[None]
        position = np.arange(width)[:, None]
        tested = (position <= kept) & (position < carried)  # every draft up to the first rejection
        # a pass counts once, however many rows it holds: the rows of a batch warm up together, and
        # a wide batch would otherwise let a decode's first passes outweigh the prior at once
        self.reached[:width] += tested.mean(1)
        self.kept[:width] += (tested & (position < kept)).mean(1)

    def expected_tokens(self, widest: int) -> np.ndarray:
        """E[tokens committed per row] for windows 0..widest."""
        self._grow(widest)
        chain = np.cumprod(self.kept[:widest] / self.reached[:widest])
        return np.concatenate([[1.0], 1.0 + np.cumsum(chain)])

    def rates(self, size: int) -> list[float]:
        """The estimated acceptance at positions 0..size-1."""
        self._grow(size)
        return (self.kept[:size] / self.reached[:size]).tolist()

    @classmethod
    def of_trace(cls, trace, size: int) -> AcceptanceStats:
        """The acceptance a finished decode showed (each position starts from an even prior of weight 1)."""
        stats = cls(weight=1.0)
        for width, counts in zip(trace.widths, trace.committed.tolist()):
            stats.update([max(c - 1, 0) for c in counts], width, [c > 0 for c in counts])
        stats._grow(size)
        return stats


@attrs.define
class WindowPlanner:
    """Chooses each pass's window from a cost profile and the acceptance seen so far."""

    profile: CostProfile
    stats: AcceptanceStats

    @classmethod
    def for_profile(cls, profile: CostProfile) -> WindowPlanner:
        return cls(profile, AcceptanceStats(list(profile.acceptance)))

    def choose(self, rows: int, widest: int) -> int:
        """The window (<= widest) with the most expected committed tokens per second."""
        candidates = [w for w in CANDIDATES if w <= widest]
        if widest not in candidates:
            candidates.append(widest)
        tokens = self.stats.expected_tokens(widest)
        return max(candidates, key=lambda w: tokens[w] / self.profile.pass_seconds(rows, w))
