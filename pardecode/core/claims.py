"""What a strategy claims about the distribution of the tokens it commits, in a form tools can check.

Every strategy carries a `Claim` (`Strategy.claim`): `pardecode list` shows it and `pardecode
certify` tests it against reference backbones whose distributions are known exactly
(`pardecode.testing`). Four kinds:

- ``exact``: every committed sequence is distributed exactly as AR sampling would produce it, under
  any sampling settings;
- ``exact_at``: exact only at the option settings in `knobs`, lossy elsewhere (zipar at
  ``window >= columns``, pjd at ``rows = 1``, lantern at ``delta = 0``);
- ``greedy``: the very tokens of greedy AR, at temperature 0 only (the strategy does not sample);
- ``lossy``: an approximation at every setting.

A knob is an option's exact value (``rows=1``) or a lower bound: ``">= 3"``, or ``">= columns"``
for the image grid's column count, which only the backbone knows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import ConfigError

KINDS = ("exact", "exact_at", "greedy", "lossy")
COLUMNS = "columns"  # in a knob's bound: the column count of the span's image grid


def _bound(condition: Any) -> int | str | None:
    """The lower bound of a ">= N" / ">= columns" knob, or None for an exact value."""
    if not isinstance(condition, str) or not condition.startswith(">="):
        return None
    rhs = condition[2:].strip()
    if rhs == COLUMNS:
        return rhs
    if rhs.isdigit():
        return int(rhs)
    raise ConfigError(f"a knob bound must be '>= N' or '>= {COLUMNS}', got {condition!r}")


def _knobs(value: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    knobs = tuple(sorted(dict(value).items()))
    for name, condition in knobs:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"a knob names a strategy option, got {name!r}")
        _bound(condition)  # refuses a malformed bound now, not when certify reads it
    return knobs


@attrs.frozen
class Claim:
    """What a strategy's committed tokens are, relative to AR sampling (see the module docstring)."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    #: (option, exact value or ">= bound") pairs, for kind "exact_at" only
    knobs: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_knobs)
    note: str = ""

    def __attrs_post_init__(self):
        if (self.kind == "exact_at") != bool(self.knobs):
            needs = "needs" if self.kind == "exact_at" else "takes no"
            raise ConfigError(f"a claim of kind {self.kind!r} {needs} knobs")

    @classmethod
    def exact(cls, note: str = "") -> Claim:
        return cls("exact", note=note)

    @classmethod
    def exact_at(cls, note: str = "", **knobs: Any) -> Claim:
        """Exact only where every knob holds, e.g. ``Claim.exact_at(rows=1)``, ``exact_at(window=">= columns")``."""
        return cls("exact_at", knobs, note)

    @classmethod
    def greedy(cls, note: str = "") -> Claim:
        return cls("greedy", note=note)

    @classmethod
    def lossy(cls, note: str = "") -> Claim:
        return cls("lossy", note=note)

    @property
    def text(self) -> str:
        """One line, as `pardecode list` shows it."""
        if self.kind == "exact_at":
            knobs = ", ".join(f"{k} {v}" if _bound(v) is not None else f"{k} = {v!r}" for k, v in self.knobs)
            return f"exact at {knobs}, lossy elsewhere"
        return {
            "exact": "exact (AR's distribution)",
            "greedy": "greedy AR, token for token (temperature 0 only)",
            "lossy": "lossy",
        }[self.kind]

    def settings(self, columns: int) -> dict[str, Any]:
        """The options that put a strategy at its knob (the smallest bound that holds) on a span whose
        image grid has `columns` columns."""
        out = {}
        for name, condition in self.knobs:
            bound = _bound(condition)
            out[name] = condition if bound is None else (columns if bound == COLUMNS else bound)
        return out

    def holds(self, options: Mapping[str, Any], columns: int) -> bool:
        """Whether `options` (a strategy's option values) lie at the knob, for `columns` grid columns."""
        for name, condition in self.knobs:
            if name not in options:
                return False
            bound, value = _bound(condition), options[name]
            if bound is None:
                if value != condition:
                    return False
            elif (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < (columns if bound == COLUMNS else bound)
            ):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "knobs": dict(self.knobs), "text": self.text, "note": self.note}


class ClaimFromLossless:
    """The default `Strategy.claim`: exact when the class's `lossless` flag is True, lossy when False.

    A strategy whose `lossless` depends on its options (a property) declares its claim itself; until
    it does, it is listed as lossy, the claim that promises nothing.
    """

    def __get__(self, instance: object, owner: type) -> Claim:
        flag = getattr(owner, "lossless", True)
        if flag is True:
            return Claim.exact()
        return Claim.lossy("" if flag is False else "declares no claim; its `lossless` depends on its options")


def claim_of(factory: Callable[..., Any]) -> Claim | None:
    """The claim of a registered strategy factory, or None when it is not a class that declares one."""
    claim = getattr(factory, "claim", None) if isinstance(factory, type) else None
    return claim if isinstance(claim, Claim) else None
