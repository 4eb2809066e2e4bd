"""Plugin registry: strategies and backbones arrive through pluggy hooks.

Built-in strategies and backbones are plugins registered through the very hooks a third-party
package implements; external packages are found through the entry-point group ``pardecode``:

    [project.entry-points.pardecode]
    myplugin = "my_package.pardecode_plugin"

where the module defines ``@hookimpl def pardecode_register_strategies(register): register(...)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import attrs
import pluggy

from .errors import ConfigError, UnknownNameError

PROJECT = "pardecode"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

BUILTIN_PLUGINS = (
    "pardecode.strategies",
    "pardecode.adapters",
    "pardecode.adapters.toy",
)


class Hooks:
    @hookspec
    def pardecode_register_strategies(self, register: Callable[..., None]) -> None:
        """Call ``register(name, factory, description)`` once per strategy.

        ``factory(**options)`` returns a `pardecode.core.strategy.Strategy`.
        """

    @hookspec
    def pardecode_register_backbones(self, register: Callable[..., None]) -> None:
        """Call ``register(name, factory, description)`` once per backbone.

        ``factory(**options)`` returns a `pardecode.core.backbone.Backbone`.
        """


@attrs.frozen
class Entry:
    """A registered strategy or backbone."""

    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str  # the module or distribution that registered it


class Registry:
    """Name -> factory tables for one kind of plugin object."""

    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Entry] = {}

    def register_from(self, plugin: str) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any], description: str = "") -> None:
            if not isinstance(name, str) or not name.isidentifier() and not name.replace("-", "_").isidentifier():
                raise ConfigError(f"{self.kind} name must be an identifier-like string, got {name!r}")
            if name in self.entries:
                other = self.entries[name].plugin
                raise ConfigError(f"{self.kind} {name!r} registered twice (by {other} and {plugin})")
            self.entries[name] = Entry(name, factory, description.strip().splitlines()[0] if description else "", plugin)

        return register

    def get(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self.entries)) from None

    def names(self) -> list[str]:
        return sorted(self.entries)


class Plugins:
    """The plugin manager with its two registries, filled once from built-ins and entry points."""

    def __init__(self, load_entry_points: bool = True):
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(Hooks)
        for name in BUILTIN_PLUGINS:
            self.manager.register(importlib.import_module(name), name=name)
        if load_entry_points:
            self.manager.load_setuptools_entrypoints(PROJECT)
        self.strategies = Registry("strategy")
        self.backbones = Registry("backbone")
        for hook, registry in (
            (self.manager.hook.pardecode_register_strategies, self.strategies),
            (self.manager.hook.pardecode_register_backbones, self.backbones),
        ):
            # call each implementation on its own so every entry records which plugin made it
            for impl in reversed(hook.get_hookimpls()):
                impl.function(register=registry.register_from(impl.plugin_name))


_PLUGINS: Plugins | None = None


def plugins() -> Plugins:
    """The process-wide plugin manager, built on first use."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = Plugins()
    return _PLUGINS


def reset_plugins() -> None:
    """Forget the plugin manager so the next call re-reads entry points (tests, notebooks)."""
    global _PLUGINS
    _PLUGINS = None
