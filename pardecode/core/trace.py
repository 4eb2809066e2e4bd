"""What a decode did, recorded by the loop (never by a strategy)."""

from __future__ import annotations

from typing import Any

import attrs
import torch


@attrs.frozen
class Trace:
    """Per forward pass: window width, tokens committed per row, seconds in and out of the model."""

    widths: list[int]
    committed: torch.Tensor  # Long[passes, B]: tokens each row committed at each pass (0 once done)
    forward_seconds: list[float]
    step_seconds: list[float]
    #: one-off time outside the passes: loading or measuring the cost profile of automatic windows
    setup_seconds: float = 0.0
    #: per-pass diagnostics a strategy attached to its verdicts, name -> Float[passes, B] (passes
    #: without the entry hold 0); lossy strategies report "tv_bound" here: per pass and row, a bound
    #: on the total variation distance between the committed tokens' distribution and AR's
    diagnostics: dict[str, torch.Tensor] = attrs.field(factory=dict)
    #: the passes placed slots (`widths` then count every scored slot) rather than a window of drafts
    placed: bool = False

    @property
    def forward_passes(self) -> int:
        return len(self.widths)

    @property
    def seconds(self) -> float:
        return float(sum(self.step_seconds))

    @property
    def overhead_seconds(self) -> float:
        """Time spent by the framework outside the backbone's forward passes."""
        return self.seconds - float(sum(self.forward_seconds))

    @property
    def row_passes(self) -> torch.Tensor:
        """Long[B]: passes each row needed until its span was complete."""
        return (self.committed > 0).sum(0)

    @property
    def tokens_per_pass(self) -> float:
        """Mean tokens committed per pass per row, over the passes each row was still running."""
        return float(self.committed.sum() / self.row_passes.sum().clamp_min(1))

    def accepted_by_offset(self, length: int) -> torch.Tensor:
        """Float[length]: mean tokens committed by the pass that produced each span offset."""
        counts = self.committed.T  # [B, passes]
        per_token = torch.repeat_interleave(counts.flatten(), counts.flatten())
        return per_token.reshape(counts.shape[0], -1)[:, :length].float().mean(0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "forward_passes": self.forward_passes,
            "widths": self.widths,
            "committed": self.committed.T.tolist(),
            "forward_seconds": self.forward_seconds,
            "step_seconds": self.step_seconds,
            "setup_seconds": self.setup_seconds,
            **({"diagnostics": {k: v.T.tolist() for k, v in self.diagnostics.items()}} if self.diagnostics else {}),
        }


@attrs.frozen
class DecodeResult:
    """Tokens of the generated span of every row, and the trace of how they were made."""

    tokens: torch.Tensor  # Long[B, length]
    trace: Trace
    session: Any = attrs.field(default=None, repr=False)  # the backbone session (for image decoding)

    @property
    def forward_passes(self) -> int:
        return self.trace.forward_passes

    @property
    def seconds(self) -> float:
        return self.trace.seconds
