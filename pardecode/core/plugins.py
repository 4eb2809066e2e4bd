"""Plugin registry: strategies, backbones and quality metrics arrive through pluggy hooks.

Built-in strategies and backbones are plugins registered through the very hooks a third-party
package implements; external packages are found through the entry-point group ``pardecode``:

    [project.entry-points.pardecode]
    myplugin = "my_package.pardecode_plugin"

where the module defines ``@hookimpl def pardecode_register_strategies(register): register(...)``.

Strategy names are lowercase letters, digits and underscores (``sjd_above``). A name that changed
stays usable as an alias (``register(name, factory, description, aliases=("sjd-above",))``): a
lookup by the alias returns the entry of the name, and listings show names only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import warnings
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
    "pardecode.fashion.plugin",
    "pardecode.metrics.plugin",
)


class Hooks:
    @hookspec
    def pardecode_register_strategies(self, register: Callable[..., None]) -> None:
        """Call ``register(name, factory, description, aliases=())`` once per strategy.

        ``factory(**options)`` returns a `pardecode.core.strategy.Strategy`; ``name`` is lowercase
        letters, digits and underscores; ``aliases`` are former names that keep working.
        """

    @hookspec
    def pardecode_register_backbones(self, register: Callable[..., None]) -> None:
        """Call ``register(name, factory, description, aliases=())`` once per backbone.

        ``factory(**options)`` returns a `pardecode.core.backbone.Backbone`.
        """

    @hookspec
    def pardecode_register_metrics(self, register: Callable[..., None]) -> None:
        """Call ``register(name, factory, description, aliases=())`` once per image-quality metric.

        ``factory(**options)`` returns a `pardecode.core.metric.Metric`; suites name metrics and pass options.
        """


class PluginWarning(UserWarning):
    """A third-party plugin failed to load or to register, and was skipped."""


@attrs.frozen
class Broken:
    """A plugin that was skipped: its name and why, in one line."""

    plugin: str
    error: str


@attrs.frozen
class Entry:
    """A registered strategy, backbone or metric."""

    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str  # the module or distribution that registered it
    aliases: tuple[str, ...] = ()  # former names that still find it


#: what a strategy's name may be: lowercase letters, digits and underscores, starting with a letter
STRATEGY_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _identifier_like(name: object) -> bool:
    """An identifier, hyphens allowed (backbone names such as ``fashion-sjd2``, former names)."""
    return isinstance(name, str) and name.replace("-", "_").isidentifier()


class Registry:
    """Name -> factory tables for one kind of plugin object, with aliases (former names)."""

    def __init__(
        self, kind: str, base: type | None = None, broken: list[Broken] | None = None, pattern: re.Pattern | None = None
    ):
        self.kind, self.base, self.pattern = kind, base, pattern
        self.entries: dict[str, Entry] = {}
        self.aliases: dict[str, str] = {}  # alias -> the name it stands for
        self.broken = broken if broken is not None else []  # skipped plugins, named when a lookup fails

    def _check_name(self, name: object) -> None:
        if self.pattern is not None:
            if not isinstance(name, str) or not self.pattern.fullmatch(name):
                raise ConfigError(
                    f"{self.kind} name must be lowercase letters, digits and underscores, starting with a letter, "
                    f"got {name!r} (a former name can stay usable: register(..., aliases=(old,)))"
                )
        elif not _identifier_like(name):
            raise ConfigError(f"{self.kind} name must be an identifier-like string, got {name!r}")

    def _taken(self, name: str) -> str | None:
        """Who holds `name` already, as a name or as an alias (None: nobody)."""
        if name in self.entries:
            return f"registered by {self.entries[name].plugin}"
        if name in self.aliases:
            target = self.entries[self.aliases[name]]
            return f"an alias of {target.name!r}, registered by {target.plugin}"
        return None

    def register_from(self, plugin: str) -> Callable[..., None]:
        def register(
            name: str, factory: Callable[..., Any], description: str = "", aliases: tuple[str, ...] | list[str] = ()
        ) -> None:
            self._check_name(name)
            if isinstance(aliases, str):
                aliases = (aliases,)
            aliases = tuple(aliases)
            held = self._taken(name)
            if held:
                raise ConfigError(f"{self.kind} {name!r} registered twice ({held}, then by {plugin})")
            for alias in aliases:
                if not _identifier_like(alias):
                    raise ConfigError(
                        f"{self.kind} {name!r}: an alias must be an identifier-like string, got {alias!r}"
                    )
                held = self._taken(alias) or ("the name itself" if alias == name else None)
                if held or aliases.count(alias) > 1:
                    raise ConfigError(
                        f"{self.kind} {name!r}: alias {alias!r} is already taken ({held or 'listed twice'})"
                    )
            if not callable(factory):
                raise ConfigError(f"{self.kind} {name!r}: the factory must be callable, got {type(factory).__name__}")
            if self.base is not None and inspect.isclass(factory) and not issubclass(factory, self.base):
                raise ConfigError(
                    f"{self.kind} {name!r}: {factory.__name__} is not a subclass of pardecode.{self.base.__name__}"
                )
            summary = description.strip().splitlines()[0] if description else ""
            self.entries[name] = Entry(name, factory, summary, plugin, aliases)
            self.aliases.update(dict.fromkeys(aliases, name))

        return register

    def get(self, name: str) -> Entry:
        """The entry registered as `name`, or as the name `name` is an alias of."""
        try:
            return self.entries[self.aliases.get(name, name)]
        except (KeyError, TypeError):
            note = "; ".join(f"plugin {b.plugin!r} was skipped: {b.error}" for b in self.broken)
            raise UnknownNameError(self.kind, name, list(self.entries), note) from None

    def canonical(self, name: str) -> str:
        """The registered name `name` stands for: itself, or the name it is an alias of."""
        return self.get(name).name

    def names(self) -> list[str]:
        """Registered names, sorted; aliases are not listed (each entry carries its own)."""
        return sorted(self.entries)

    def drop(self, plugin: str) -> None:
        """Forget everything `plugin` registered: its entries and their aliases."""
        self.entries = {k: e for k, e in self.entries.items() if e.plugin != plugin}
        self.aliases = {a: n for a, n in self.aliases.items() if n in self.entries}


class Plugins:
    """The plugin manager with its registries, filled once from built-ins and entry points."""

    def __init__(self, load_entry_points: bool = True):
        from .backbone import Backbone
        from .metric import Metric
        from .strategy import Strategy

        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(Hooks)
        #: third-party plugins skipped because they failed to import or to register
        self.broken: list[Broken] = []
        for name in BUILTIN_PLUGINS:
            self.manager.register(importlib.import_module(name), name=name)
        if load_entry_points:
            self._load_entry_points()
        self.strategies = Registry("strategy", Strategy, self.broken, STRATEGY_NAME)
        self.backbones = Registry("backbone", Backbone, self.broken)
        self.metrics = Registry("metric", Metric, self.broken, STRATEGY_NAME)
        for hook, registry in (
            (self.manager.hook.pardecode_register_strategies, self.strategies),
            (self.manager.hook.pardecode_register_backbones, self.backbones),
            (self.manager.hook.pardecode_register_metrics, self.metrics),
        ):
            # call each implementation on its own so every entry records which plugin made it
            for impl in reversed(hook.get_hookimpls()):
                if impl.plugin_name in BUILTIN_PLUGINS:  # our own: a failure is a bug, shown in full
                    impl.function(register=registry.register_from(impl.plugin_name))
                    continue
                try:
                    impl.function(register=registry.register_from(impl.plugin_name))
                except Exception as err:  # one broken plugin must not break every command
                    self._skip(impl.plugin_name, err)

    def _load_entry_points(self) -> None:
        """Import every `pardecode` entry point on its own; one that fails is skipped and recorded."""
        for ep in importlib.metadata.entry_points(group=PROJECT):
            if self.manager.get_plugin(ep.name) is not None or self.manager.is_blocked(ep.name):
                continue
            try:
                self.manager.register(ep.load(), name=ep.name)
            except Exception as err:
                self._skip(ep.name, err)

    def _skip(self, plugin: str, err: Exception) -> None:
        reason = " ".join(f"{type(err).__name__}: {err}".split())  # one line
        self.broken.append(Broken(plugin, reason))
        for registry in (getattr(self, name, None) for name in ("strategies", "backbones", "metrics")):
            if registry is not None:  # what it registered before failing goes too
                registry.drop(plugin)
        if self.manager.get_plugin(plugin) is not None:
            self.manager.unregister(name=plugin)


_PLUGINS: Plugins | None = None


def plugins() -> Plugins:
    """The process-wide plugin manager, built on first use."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = Plugins()
        for broken in _PLUGINS.broken:
            warnings.warn(f"plugin {broken.plugin!r} skipped: {broken.error}", PluginWarning, stacklevel=2)
    return _PLUGINS


def reset_plugins() -> None:
    """Forget the plugin manager so the next call re-reads entry points (tests, notebooks)."""
    global _PLUGINS
    _PLUGINS = None
