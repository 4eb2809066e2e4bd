"""The public entry points: look up strategies and backbones by name and decode with them."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from .core.backbone import Backbone
from .core.errors import ConfigError
from .core.options import build, options_of
from .core.plugins import plugins
from .core.quiet import quiet_loading
from .core.strategy import Strategy


def get_strategy(name: str, **options: Any) -> Strategy:
    """A registered strategy built with `options` (e.g. window=16); unknown options are refused by name."""
    entry = plugins().strategies.get(name)
    strategy = build("strategy", name, entry.factory, options)
    if not isinstance(strategy, Strategy):
        raise ConfigError(
            f"strategy {name!r} (registered by {entry.plugin}) built a {type(strategy).__name__}, "
            "not a pardecode.Strategy; the plugin must register a Strategy subclass"
        )
    return strategy


def get_backbone(name: str, **options: Any) -> Backbone:
    """A registered backbone built with `options` (e.g. path=..., dtype=...); unknown options are refused by name."""
    entry = plugins().backbones.get(name)
    # a plugin that loads with transformers gets the quiet loading the built-ins have (transformers
    # is only imported here if the plugin already did)
    quiet = quiet_loading() if "transformers" in sys.modules else contextlib.nullcontext()
    with quiet:
        backbone = build("backbone", name, entry.factory, options)
    if not isinstance(backbone, Backbone):
        raise ConfigError(
            f"backbone {name!r} (registered by {entry.plugin}) built a {type(backbone).__name__}, "
            "not a pardecode.Backbone; the plugin's factory must return a Backbone"
        )
    return backbone


def list_plugins() -> dict[str, list[dict[str, Any]]]:
    """Every registered strategy and backbone: description, registering plugin, and options
    (name, type, default), plus the plugins that failed to load and why."""
    pm = plugins()
    listing: dict[str, list[dict[str, Any]]] = {}
    for kind, reg in (("strategies", pm.strategies), ("backbones", pm.backbones)):
        listing[kind] = []
        for e in map(reg.get, reg.names()):
            options, open_ = options_of(e.factory)
            listing[kind].append({
                "name": e.name, "description": e.description, "plugin": e.plugin,
                "options": [o.to_dict() for o in options], "more_options": open_,
            })
    listing["broken"] = [{"plugin": b.plugin, "error": b.error} for b in pm.broken]
    return listing
