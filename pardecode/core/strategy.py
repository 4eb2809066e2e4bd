"""What a decoding strategy is: it proposes drafts and verifies them against p.

A strategy never runs the model, never touches the cache and never commits tokens itself: it
returns a `Proposal` (the drafts for the next W span offsets) and, once the loop has scored it, a
`Verdict` (how many drafts to keep and the token that follows them). The loop does the rest, so
forward passes and committed tokens are counted in one place for every strategy.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import torch

from .backbone import NoisyInputs
from .claims import Claim, ClaimFromLossless
from .config import SamplingConfig
from .errors import ConfigError
from .layout import Grid, TokenLayout


def _placement(proposal: Proposal, attribute, value) -> None:
    if value is None:
        return
    if attribute.name == "attends" and proposal.offsets is None:
        raise ConfigError("Proposal.attends needs Proposal.offsets (the slots' span offsets)")
    b, w = proposal.tokens.shape[:2]
    shape, dtype = ((b, w), torch.long) if attribute.name == "offsets" else ((b, w, w), torch.bool)
    if tuple(value.shape) != shape or value.dtype != dtype:
        raise ConfigError(
            f"Proposal.{attribute.name} must be {dtype} {list(shape)}, got {value.dtype} {list(value.shape)}"
        )


AUTO_WIDEST = 64  # the widest window an automatic choice may take


@attrs.frozen
class Proposal:
    """Drafts for span offsets n..n+W-1 of every row (W may be 0: plain AR).

    With `offsets`, the W slots are placed anywhere in the span instead (several fronts, or several
    candidates for one offset; -1 marks an unused slot) and each slot may attend to the earlier slots
    `attends` allows (default: every slot at a smaller offset); see `core.fronts` for the rest of
    that contract. Without it the loop runs today's single window unchanged.
    """

    tokens: torch.Tensor  # Long[B, W]
    noisy: NoisyInputs | None = None  # noise-conditioned inputs for the draft slots (SJD2)
    offsets: torch.Tensor | None = attrs.field(default=None, validator=_placement)  # Long[B, W]
    attends: torch.Tensor | None = attrs.field(default=None, validator=_placement)  # Bool[B, W, W]: slot i sees slot j

    @property
    def width(self) -> int:
        return self.tokens.shape[1]


@attrs.frozen
class Verdict:
    """The first `accepted[b]` drafts of row b are kept, followed by `next_token[b]`."""

    accepted: torch.Tensor  # Long[B], 0..W
    next_token: torch.Tensor  # Long[B]
    #: optional per-row diagnostics of this pass, name -> Float[B] (e.g. a lossy rule's "tv_bound");
    #: the loop records them in `Trace.diagnostics`
    diagnostics: dict[str, torch.Tensor] = attrs.field(factory=dict)


def _long_matrix(name: str):
    def check(commits: Commits, attribute, value) -> None:
        if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.dtype != torch.long:
            raise ConfigError(f"Commits.{name} must be a Long[B, K] tensor, got {getattr(value, 'dtype', type(value))}")
        if value.shape != commits.offsets.shape:
            raise ConfigError(f"Commits.{name} is {list(value.shape)}, Commits.offsets {list(commits.offsets.shape)}")

    return check


@attrs.frozen
class Commits:
    """What a pass of placed slots commits: `tokens[b, k]` at span offset `offsets[b, k]` (-1: none).

    `source[b, k]` is the p entry the token was chosen from (0: the prompt's, 1 + j: slot j's), so
    the loop can check its context; -1 marks a token the layout forces (one allowed token), which
    needs no distribution at all.
    """

    offsets: torch.Tensor = attrs.field(validator=_long_matrix("offsets"))
    tokens: torch.Tensor = attrs.field(validator=_long_matrix("tokens"))
    source: torch.Tensor = attrs.field(validator=_long_matrix("source"))

    @classmethod
    def none(cls, batch: int, device: torch.device | str = "cpu") -> Commits:
        empty = torch.zeros(batch, 0, dtype=torch.long, device=device)
        return cls(empty, empty, empty)

    @classmethod
    def cat(cls, *parts: Commits) -> Commits:
        return cls(*(torch.cat([getattr(p, f) for p in parts], 1) for f in ("offsets", "tokens", "source")))


@attrs.define
class DecodeContext:
    """What a strategy may know about the decode in progress (read-only for strategies)."""

    batch: int
    vocab_size: int
    length: int  # tokens each row generates
    sampling: SamplingConfig
    generator: torch.Generator
    device: torch.device
    allowed_at: Callable[[torch.Tensor], torch.Tensor | None]  # Long[B, k] offsets -> Bool[B, k, V]
    tokens: torch.Tensor  # Long[B, length + slack]: committed tokens (valid up to `committed`)
    committed: torch.Tensor  # Long[B]: tokens committed so far per row
    step: int = 0
    #: normalised clean embeddings of tokens, Long[...] -> Float[..., D]; None unless the backbone
    #: is noise-conditioned (denoising strategies need it)
    token_embeddings: Callable[[torch.Tensor], torch.Tensor] | None = None
    backbone: str = ""  # the backbone's registry name, for error messages
    longest_remaining: int = 0  # tokens the longest-running row still has to commit (kept by the loop)
    #: the loop's window planner: widest -> the window with the most expected tokens per second
    planner: Callable[[int], int] | None = None
    #: the same for placed-slot strategies with a shape: candidate `core.windows.Shape`s -> the one
    #: with the most expected tokens per second (a tree's window, branches and depth)
    shape_planner: Callable[[Sequence[Any]], Any] | None = None
    #: where the image cells sit in the span (rows, cols, stride, cell mask), from the session's
    #: layout; None when the span has no 2-D structure
    grid: Grid | None = None
    #: the backbone's image codebook, () -> (token ids Long[K], embeddings Float[K, D]) or None
    #: (see `Backbone.image_codebook`); strategies with latent neighbourhoods read it
    image_codebook: Callable[[], tuple[torch.Tensor, torch.Tensor] | None] = lambda: None
    layout: TokenLayout | None = None  # the span's layout (row-parallel strategies need its grid)
    #: Bool[B, length] offsets committed / committed and cached; kept only once a proposal places
    #: slots (core.fronts), where commits need not be a prefix. None on the single-window path.
    done: torch.Tensor | None = None
    cached: torch.Tensor | None = None

    def offsets(self, width: int, start: int | torch.Tensor = 0) -> torch.Tensor:
        """Long[B, width]: span offsets committed+start .. committed+start+width-1 of every row.

        `start` is one number for every row, or Long[B] (e.g. accepted + 1: the next window's start).
        """
        if isinstance(start, torch.Tensor):
            start = start.unsqueeze(1)
        return self.committed.unsqueeze(1) + start + torch.arange(width, device=self.device)

    def useful_width(self, window: int) -> int:
        """Draft slots worth scoring this pass: at most `window`, none past every row's last offset.

        A row's last token always comes from a verdict (a correction or the bonus), never from a
        draft, so drafts stop one short of the longest remaining row. Near the end of the span a
        wide window would otherwise spend most of each pass on slots no row can keep.
        """
        return max(0, min(window, self.longest_remaining - 1))

    def draft_width(self, window: int | str, widest: int = AUTO_WIDEST) -> int:
        """Draft slots to score this pass: `window`, or for "auto" the planner's choice among
        0..`widest` (see `pardecode.core.windows`), narrowed by `useful_width`."""
        if window == "auto":
            window = self.planner(widest) if self.planner is not None else widest
        return self.useful_width(window)

    def allowed(self, width: int, start: int | torch.Tensor = 0) -> torch.Tensor | None:
        """Bool[B, width, V] allowed tokens at the next `width` offsets (after `start`), or None."""
        return self.allowed_at(self.offsets(width, start))


def positive_int(name: str):
    def check(_, attribute, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")

    return check


def non_negative_int(_, attribute, value) -> None:
    """Validator: an integer >= 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def one_of(choices: tuple[str, ...]):
    """Validator: one of `choices`."""

    def check(_, attribute, value) -> None:
        if value not in choices:
            raise ConfigError(f"{attribute.name} must be one of {list(choices)}, got {value!r}")

    return check


def window_size(name: str = "window"):
    """Validator: a positive integer, or "auto" (chosen per pass for throughput)."""
    integer = positive_int(name)

    def check(inst, attribute, value):
        if value != "auto":
            try:
                integer(inst, attribute, value)
            except ConfigError:
                raise ConfigError(f"{name} must be an integer >= 1 or 'auto', got {value!r}") from None

    return check


class Strategy(abc.ABC):
    """Base class of decoding strategies; subclasses are usually attrs classes of their options."""

    name: ClassVar[str]
    #: True when the committed sequence is distributed exactly as AR sampling would produce it
    lossless: ClassVar[bool] = True
    #: what a lossy strategy approximates when it commits a token whose conditioning context was not
    #: all committed (placed slots only); without it the loop refuses such commits
    approximation: ClassVar[str | None] = None
    #: what the committed tokens are relative to AR sampling: exact, exact at some option settings,
    #: greedy AR, or lossy (`pardecode.core.claims`); `pardecode list` shows it and `pardecode certify`
    #: tests it. Defaults to exact when `lossless` is True, lossy when it is False.
    claim: ClassVar[Claim] = ClaimFromLossless()  # type: ignore[assignment]

    def reset(self, ctx: DecodeContext) -> None:  # noqa: B027 (a hook: most strategies keep no state)
        """Forget per-decode state before a new decode starts."""

    def auto_sized(self) -> bool:
        """True when some option is "auto": the decode then needs a window planner (a cost profile),
        resolved before it starts. Strategies that size themselves otherwise override this."""
        return attrs.has(type(self)) and any(
            isinstance(value, str) and value == "auto" for value in attrs.asdict(self, recurse=False).values()
        )

    @abc.abstractmethod
    def propose(self, ctx: DecodeContext) -> Proposal:
        """Drafts for the next forward pass."""

    @abc.abstractmethod
    def verify(self, ctx: DecodeContext, proposal: Proposal, p: torch.Tensor) -> Verdict | Commits:
        """Decide what to keep given p: Float[B, W+1, V] for offsets committed..committed+W.

        A single window is answered with a `Verdict`. For a proposal with `offsets`, p[:, 1 + j] is
        slot j's next-token distribution (offset offsets[j] + 1), p[:, 0] the prompt's (offset 0) at
        the first pass, and the answer is `Commits`.
        """
