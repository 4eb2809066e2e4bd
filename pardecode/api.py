"""The public entry points: look up strategies and backbones by name and decode with them."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from .core.backbone import Backbone
from .core.claims import claim_of
from .core.errors import ConfigError
from .core.options import build, options_of
from .core.plugins import plugins
from .core.quiet import quiet_loading
from .core.strategy import Strategy


def _checked(kind: str, name: str, plugin: str, built: Any, expected: type) -> Any:
    """`built`, refused with a line naming the plugin unless it is an `expected`."""
    if not isinstance(built, expected):
        raise ConfigError(
            f"{kind} {name!r} (registered by {plugin}) built a {type(built).__name__}, not a "
            f"pardecode.{expected.__name__}; the plugin's factory must return a {expected.__name__}"
        )
    return built


def get_strategy(name: str, **options: Any) -> Strategy:
    """A registered strategy built with `options` (e.g. window=16); unknown options are refused by name."""
    entry = plugins().strategies.get(name)
    return _checked("strategy", name, entry.plugin, build("strategy", name, entry.factory, options), Strategy)


def get_backbone(name: str, **options: Any) -> Backbone:
    """A registered backbone built with `options` (e.g. path=..., dtype=...); unknown options are refused by name."""
    entry = plugins().backbones.get(name)
    # a plugin that loads with transformers gets the quiet loading the built-ins have (transformers
    # is only imported here if the plugin already did)
    quiet = quiet_loading() if "transformers" in sys.modules else contextlib.nullcontext()
    with quiet:
        backbone = build("backbone", name, entry.factory, options)
    return _checked("backbone", name, entry.plugin, backbone, Backbone)


def list_plugins() -> dict[str, list[dict[str, Any]]]:
    """Every registered strategy and backbone: description, registering plugin, and options
    (name, type, default), each strategy's claim (`pardecode.core.claims`), plus the plugins that
    failed to load and why."""
    pm = plugins()
    listing: dict[str, list[dict[str, Any]]] = {}
    for kind, reg in (("strategies", pm.strategies), ("backbones", pm.backbones)):
        listing[kind] = []
        for e in map(reg.get, reg.names()):
            options, open_ = options_of(e.factory)
            entry = {
                "name": e.name, "description": e.description, "plugin": e.plugin,
                "options": [o.to_dict() for o in options], "more_options": open_,
            }
            if kind == "strategies":  # None: a factory function, not a Strategy class that declares one
                claim = claim_of(e.factory)
                entry["claim"] = claim.to_dict() if claim is not None else None
            listing[kind].append(entry)
    listing["broken"] = [{"plugin": b.plugin, "error": b.error} for b in pm.broken]
    return listing
