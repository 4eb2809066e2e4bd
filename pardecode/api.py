"""The public entry points: look up strategies and backbones by name and decode with them."""

from __future__ import annotations

from typing import Any

from .core.backbone import Backbone
from .core.plugins import plugins
from .core.strategy import Strategy


def get_strategy(name: str, **options: Any) -> Strategy:
    """A registered strategy built with `options` (e.g. window=16)."""
    return plugins().strategies.get(name).factory(**options)


def get_backbone(name: str, **options: Any) -> Backbone:
    """A registered backbone built with `options` (e.g. path=..., dtype=...)."""
    return plugins().backbones.get(name).factory(**options)


def list_plugins() -> dict[str, list[dict[str, str]]]:
    """Every registered strategy and backbone with its description and the plugin that made it."""
    pm = plugins()
    return {
        kind: [{"name": e.name, "description": e.description, "plugin": e.plugin} for e in map(reg.get, reg.names())]
        for kind, reg in (("strategies", pm.strategies), ("backbones", pm.backbones))
    }
