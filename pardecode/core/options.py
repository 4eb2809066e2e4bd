"""The options a registered factory takes, read from its signature, so users can discover them and a
mistyped one is refused by name before the factory runs.

Strategies are usually attrs classes (their fields are the options); backbone factories are
functions. Both are described the same way: name, type as written in the source, default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import ConfigError

_REQUIRED = inspect.Parameter.empty


@attrs.frozen
class Option:
    """One keyword option of a factory: `default` is None and `required` True when it has none."""

    name: str
    type: str  # the annotation as written ("int", "str | None"), "" when unannotated
    default: Any = None
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        default = self.default if isinstance(self.default, (int, float, str, bool, type(None))) else repr(self.default)
        return {"name": self.name, "type": self.type, "default": default, "required": self.required}


def _type_name(annotation: Any) -> str:
    if annotation is _REQUIRED:
        return ""
    if isinstance(annotation, str):  # postponed annotations stay as written
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def options_of(factory: Callable[..., Any]) -> tuple[list[Option], bool]:
    """(options, open): the keyword options `factory` takes, and whether it also takes **extras."""
    if attrs.has(factory):
        fields = [f for f in attrs.fields(factory) if f.init]
        out = []
        for f in fields:
            default = f.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory() if not default.takes_self else None
            name = f.alias or f.name
            out.append(
                Option(
                    name,
                    _type_name(f.type if f.type is not None else _REQUIRED),
                    None if default is attrs.NOTHING else default,
                    default is attrs.NOTHING,
                )
            )
        return out, False
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to say
        return [], True
    out, open_ = [], False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_ = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            required = p.default is _REQUIRED
            out.append(Option(p.name, _type_name(p.annotation), None if required else p.default, required))
    return out, open_


def check_options(kind: str, name: str, factory: Callable[..., Any], given: Mapping[str, Any]) -> None:
    """A ConfigError naming every option of `given` that `factory` does not take (with those it
    does), or a required option it lacks."""
    options, open_ = options_of(factory)
    known = [o.name for o in options]
    unknown = [k for k in given if k not in known]
    if unknown and not open_:
        listed = ", ".join(known) or "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for {kind} {name!r}; its options: {listed}"
        )
    missing = [o.name for o in options if o.required and o.name not in given]
    if missing:
        raise ConfigError(f"{kind} {name!r} needs option(s) {', '.join(map(repr, missing))}")


def build(kind: str, name: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> Any:
    """`factory(**options)`, unknown or missing options refused first as a ConfigError naming them."""
    check_options(kind, name, factory, options)
    return factory(**options)
