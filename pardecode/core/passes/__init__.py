"""The two kinds of forward pass the Decoder runs, behind one small interface.

A pass kind turns a strategy's proposal into the model's inputs (`prepare`), the model's scores
into the target distributions p (`targets`), and the strategy's answer into committed tokens and
cache marks (`commit`). The Decoder around it runs the forward pass, counts it, and keeps per-row
progress and the trace; a pass kind never touches those. Two kinds exist:

- `SingleWindow` (`single_window.py`): W drafts right after each row's committed prefix; the
  strategy answers with a `Verdict` (drafts kept, the token that follows).
- `PlacedSlots` (`placed_slots.py`): slots at explicit span offsets with their own attention
  (several fronts, draft trees); the strategy answers with `Commits`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from ..backbone import Scores, Window
from ..strategy import Commits, Proposal, Verdict


@attrs.frozen
class Committed:
    """What one pass committed: per row, as a tensor and on the host (one transfer)."""

    tokens: torch.Tensor  # Long[B]: tokens each row committed
    per_row: list[int]  # the same, mirrored on the host
    #: drafts each row kept (single window only: the window planner learns from it), else None
    accepted: list[int] | None = None
    diagnostics: dict[str, torch.Tensor] = attrs.field(factory=dict)


class PassKind(abc.ABC):
    """One kind of pass. Between `prepare` and `commit` it holds the pass it prepared (`Prepared`)."""

    @abc.abstractmethod
    def prepare(self, proposal: Proposal, active: torch.Tensor | None) -> Prepared:
        """Check the proposal and build the forward pass's inputs (`Prepared.window`)."""

    @abc.abstractmethod
    def targets(self, prepared: Prepared, scores: Scores) -> torch.Tensor:
        """p: Float[B, 1 + W, V], what the strategy verifies against."""

    @abc.abstractmethod
    def commit(self, prepared: Prepared, answer: Verdict | Commits, remaining: Sequence[int]) -> Committed:
        """Apply the strategy's answer: tokens into `ctx.tokens`, surviving inputs into the cache.

        `remaining` is each row's count of tokens still to commit before this pass (read-only).
        """


@attrs.frozen
class Prepared:
    """A prepared pass: the window to score and what its kind needs to finish the pass."""

    proposal: Proposal
    window: Window
    details: Any = None  # kind-specific (e.g. the placed slots' attention)
