"""The public entry points: look up strategies and backbones by name and decode with them."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs

from .core import loop
from .core.backbone import Backbone
from .core.claims import claim_of
from .core.config import SamplingConfig
from .core.cost import CostProfile
from .core.errors import ConfigError
from .core.options import build, options_of
from .core.plugins import plugins
from .core.quiet import quiet_loading
from .core.strategy import Strategy
from .core.trace import DecodeResult
from .planning import Choice, fastest_exact, profile_for, refine, setting_label


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
    """Every registered strategy, backbone and metric: description, registering plugin, former names that
    still work (aliases), options (name, type, default) and each strategy's claim (`pardecode.core.claims`),
    plus the plugins that failed to load and why."""
    pm = plugins()
    listing: dict[str, list[dict[str, Any]]] = {}
    for kind, reg in (("strategies", pm.strategies), ("backbones", pm.backbones), ("metrics", pm.metrics)):
        listing[kind] = []
        for e in map(reg.get, reg.names()):
            options, open_ = options_of(e.factory)
            entry = {
                "name": e.name,
                "description": e.description,
                "plugin": e.plugin,
                "aliases": list(e.aliases),
                "options": [o.to_dict() for o in options],
                "more_options": open_,
            }
            if kind == "strategies":  # None: a factory function, not a Strategy class that declares one
                claim = claim_of(e.factory)
                entry["claim"] = claim.to_dict() if claim is not None else None
            listing[kind].append(entry)
    listing["broken"] = [{"plugin": b.plugin, "error": b.error} for b in pm.broken]
    return listing


def choose_strategy(
    backbone: Backbone, batch: int, *, sampling: SamplingConfig | None = None, **start_options: Any
) -> Choice:
    """The exact setting this machine's cost profile predicts fastest for `batch` rows (sjd_pac,
    or sjd with maximal or Gumbel-coupled redraws, each sizing its window automatically)."""
    sampling = sampling or backbone.default_sampling
    return fastest_exact(profile_for(backbone, sampling, batch, start_options), batch)


def decode(
    backbone: Backbone,
    strategy: Strategy | str | None,
    prompts: Sequence[str],
    *,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    strategy_options: dict[str, Any] | None = None,
    profile: CostProfile | None = None,
    **start_options: Any,
) -> DecodeResult:
    """Decode one batch of `prompts` with `strategy` (an instance or a registered name).

    `strategy=None` runs the exact setting this machine's cost profile predicts fastest for the
    batch (`choose_strategy`). `sampling` defaults to the backbone's reference settings;
    `start_options` go to `backbone.start` (image size, ...). A strategy that sizes its window
    automatically gets `profile`, or else this machine's stored cost profile of the backbone, or a
    prior that this decode's passes then rescale to this machine (`pardecode.planning`; finding
    it is `trace.setup_seconds`).
    """
    seed, prompts = loop.check_seed(seed), loop.check_prompts(prompts)
    sampling = sampling or backbone.default_sampling
    t0 = time.perf_counter()
    found = None
    if strategy is None:
        if strategy_options:
            raise ConfigError("strategy_options only apply when the strategy is given by name")
        if profile is None:
            profile = found = profile_for(backbone, sampling, len(prompts), start_options)
        strategy = fastest_exact(profile, len(prompts)).strategy
    elif isinstance(strategy, str):
        strategy = get_strategy(strategy, **(strategy_options or {}))
    elif strategy_options:
        raise ConfigError("strategy_options only apply when the strategy is given by name")
    elif not isinstance(strategy, Strategy):
        raise ConfigError(f"strategy must be a registered name or a pardecode.Strategy, got {type(strategy).__name__}")
    if profile is None and strategy.auto_sized():
        profile = found = profile_for(backbone, sampling, len(prompts), start_options)
    setup = time.perf_counter() - t0 if found is not None else 0.0
    planned = profile.for_setting(setting_label(strategy)) if profile is not None else None
    result = loop.decode(backbone, strategy, prompts, sampling=sampling, seed=seed, profile=planned, **start_options)
    if found is not None:  # a prior learns this machine's speed from the decode that used it
        refine(found, result.trace)
    return attrs.evolve(result, trace=attrs.evolve(result.trace, setup_seconds=setup)) if setup else result
