"""Benchmark suites: a TOML description, validated up front and expanded into an ordered list of runs.

A suite names backbones, strategies with parameter grids, prompts (inline, a named prompt set or a
prompts file, optionally a seeded subset: `prompt_sets`), seeds, a batch size, sampling settings, a
number of repeats and the quality metrics it asks for. Everything is checked when the suite is read
(names against the plugin registry, strategy options by building each strategy once), so a bad suite
fails before any model runs. Runs are ordered repeat-major, then seed, then prompt, with the strategy setting
innermost: settings are interleaved, so slow drift of the machine touches all of them alike.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..core.config import SamplingConfig
from ..core.errors import ConfigError
from .prompt_sets import PromptSet, prompt_set, read_prompts_file
from .scoring import MetricSpec, parse_metrics

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).resolve().parent / "suites"
SAMPLING_KEYS = tuple(attrs.fields_dict(SamplingConfig))
#: keys that describe a suite without deciding what runs: stored in suite.json, outside the fingerprint
PROMPT_NOTES = ("prompt_source", "prompt_metadata")


def builtin_suites() -> dict[str, Path]:
    """Name -> TOML file of every suite that ships with pardecode."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


# ------------------------------------------------------------------------------------- validation


def _fail(where: str, message: str) -> None:
    raise ConfigError(f"{where}: {message}")


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        _fail(where, f"expected a table, got {value!r}")
    return dict(value)


def _only_keys(where: str, table: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    table = _table(where, table)
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        _fail(where, f"unknown key(s) {unknown}; allowed keys: {list(allowed)}")
    missing = [k for k in required if k not in table]
    if missing:
        _fail(where, f"missing key(s) {missing}")
    return table


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(minimum: int):
    def check(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not _is_int(value) or value < minimum:
            raise ConfigError(f"suite: {attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


def _identifier(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Names end up in file names (plots) and table cells: no spaces, no slashes."""
    if not isinstance(value, str) or not value or any(c.isspace() or c in "/\\" for c in value):
        raise ConfigError(
            f"suite: {attribute.name} must be a non-empty string without spaces or slashes, got {value!r}"
        )


def _sampling_overrides(where: str, table: Any) -> dict[str, Any]:
    """Overrides of a backbone's reference sampling, checked against SamplingConfig's own rules."""
    overrides = _only_keys(where, table, SAMPLING_KEYS)
    try:
        SamplingConfig(**overrides)
    except ConfigError as err:
        _fail(where, str(err))
    return overrides


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def describe(name: str, values: Mapping[str, Any]) -> str:
    """`name k=v k=v`: how a setting is named in tables and plots."""
    return " ".join([name, *(f"{k}={_format_value(v)}" for k, v in values.items())])


# ------------------------------------------------------------------------------------ the model


@attrs.frozen
class BackboneSpec:
    """A backbone to load (registry name + factory options) and the options of `backbone.start`."""

    name: str = attrs.field(validator=_identifier)
    options: dict[str, Any] = attrs.field(factory=dict)
    start: dict[str, Any] = attrs.field(factory=dict)
    label: str = ""  # how tables and plot files name it; defaults to `name` (set it to tell two entries apart)

    def __attrs_post_init__(self):
        from ..core.plugins import plugins

        if not self.label:
            object.__setattr__(self, "label", self.name)
        _identifier(self, attrs.fields(BackboneSpec).label, self.label)
        plugins().backbones.get(self.name)  # UnknownNameError lists the registered backbones

    def load(self):
        from ..api import get_backbone

        try:
            return get_backbone(self.name, **self.options)
        except ConfigError as err:
            raise ConfigError(f"suite: backbone {self.label!r}: {err}") from None


@attrs.frozen
class Setting:
    """One point of a strategy's grid with its sampling: what a table row reports on."""

    strategy: str
    params: dict[str, Any]
    sampling: dict[str, Any]  # overrides of the backbone's reference sampling (suite-wide, then this strategy's)
    label: str
    backbones: tuple[str, ...] = ()  # labels of the backbones it runs on (empty: all)

    def runs_on(self, backbone: str) -> bool:
        return not self.backbones or backbone in self.backbones

    def build(self):
        """A fresh strategy instance (strategies keep per-decode state)."""
        from ..api import get_strategy

        try:
            return get_strategy(self.strategy, **self.params)
        except ConfigError as err:
            raise ConfigError(f"suite: strategy {self.label!r}: {err}") from None

    def sampling_for(self, backbone) -> SamplingConfig:
        return attrs.evolve(backbone.default_sampling, **self.sampling)


@attrs.frozen
class StrategySpec:
    """A strategy with fixed `params`, a `grid` of values to sweep, sampling overrides, and the
    backbones it runs on (all by default; e.g. sjd2 only on a noise-conditioned checkpoint)."""

    name: str = attrs.field(validator=_identifier)
    params: dict[str, Any] = attrs.field(factory=dict)
    grid: dict[str, list[Any]] = attrs.field(factory=dict)
    sampling: dict[str, Any] = attrs.field(factory=dict)
    backbones: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self):
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"suite: strategy {self.name!r} grid {key!r} must be a non-empty list of values, got {values!r}"
                )
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ConfigError(f"suite: strategy {self.name!r} grid {key!r} repeats a value: {values!r}")
        both = sorted(set(self.params) & set(self.grid))
        if both:
            raise ConfigError(f"suite: strategy {self.name!r} sets {both} both in params and in grid")

    def settings(self, suite_sampling: Mapping[str, Any]) -> list[Setting]:
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            params = {**self.params, **dict(zip(keys, values))}
            label = describe(self.name, {**params, **self.sampling})
            setting = Setting(self.name, params, {**suite_sampling, **self.sampling}, label, self.backbones)
            setting.build()  # unknown options and bad values fail now, not mid-suite
            out.append(setting)
        return out


@attrs.frozen
class Run:
    """One decode of `batch` copies of `prompt`: the unit that is timed, recorded and resumed."""

    backbone: str  # BackboneSpec.label
    setting: Setting
    prompt: str
    seed: int
    repeat: int

    @property
    def key(self) -> dict[str, Any]:
        s = self.setting
        return {
            "backbone": self.backbone,
            "setting": s.label,
            "strategy": s.strategy,
            "params": s.params,
            "sampling": s.sampling,
            "prompt": self.prompt,
            "seed": self.seed,
            "repeat": self.repeat,
        }

    @property
    def id(self) -> str:
        return run_id(self.key)


def run_id(key: Mapping[str, Any]) -> str:
    """The identity of a run (canonical JSON of its key), shared by the runner and the report."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def _non_empty_unique(kind: str, check):
    def validate(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, tuple) or not value:
            raise ConfigError(
                f"suite: {attribute.name} must be a non-empty list of {kind}, "
                f"got {list(value) if isinstance(value, tuple) else value!r}"
            )
        bad = [v for v in value if not check(v)]
        if bad:
            raise ConfigError(f"suite: {attribute.name} must hold {kind}, got {bad!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"suite: {attribute.name} repeats a value: {list(value)!r}")

    return validate


@attrs.frozen
class Suite:
    """A validated benchmark suite."""

    name: str = attrs.field(validator=_identifier)
    backbones: tuple[BackboneSpec, ...] = attrs.field(converter=tuple)
    strategies: tuple[StrategySpec, ...] = attrs.field(converter=tuple)
    prompts: tuple[str, ...] = attrs.field(
        converter=tuple,
        validator=_non_empty_unique("non-empty strings", lambda p: isinstance(p, str) and bool(p.strip())),
    )
    seeds: tuple[int, ...] = attrs.field(
        converter=tuple, validator=_non_empty_unique("integers >= 0", lambda s: _is_int(s) and s >= 0)
    )
    batch: int = attrs.field(default=1, validator=_int_at_least(1))
    repeats: int = attrs.field(default=1, validator=_int_at_least(1))
    warmup: int = attrs.field(default=1, validator=_int_at_least(1))  # untimed decodes per setting and process
    sampling: dict[str, Any] = attrs.field(factory=dict)
    description: str = ""
    #: image-quality metrics by name (`pardecode list`); empty: each backbone's own judge, if any (the default model's)
    metrics: tuple[MetricSpec, ...] = attrs.field(default=(), converter=tuple)
    #: where the prompts came from (a named set, a file, a subset), for the report
    prompt_source: str = ""
    #: per prompt, what its set says about it (e.g. GenEval's objects, COCO's image id); may be empty
    prompt_metadata: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=tuple, repr=False)
    settings: tuple[Setting, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self):
        if self.prompt_metadata and len(self.prompt_metadata) != len(self.prompts):
            raise ConfigError(
                f"suite: prompt_metadata needs one entry per prompt ({len(self.prompts)}), "
                f"got {len(self.prompt_metadata)}"
            )
        for kind, items in (("backbones", self.backbones), ("strategies", self.strategies)):
            if not items:
                raise ConfigError(f"suite: {kind} must list at least one entry")
        labels = [b.label for b in self.backbones]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"suite: backbone labels must be unique (set label= to tell them apart), got {labels}")
        for spec in self.strategies:
            unknown = sorted(set(spec.backbones) - set(labels))
            if unknown:
                raise ConfigError(
                    f"suite: strategy {spec.name!r} names backbones {unknown}; the suite's backbones are {labels}"
                )
        object.__setattr__(self, "settings", tuple(s for spec in self.strategies for s in spec.settings(self.sampling)))
        settings = [s.label for s in self.settings]
        duplicates = sorted({s for s in settings if settings.count(s) > 1})
        if duplicates:
            raise ConfigError(f"suite: the same strategy setting appears twice: {duplicates}")

    def runs(self) -> list[Run]:
        """Every run, backbone-major, then repeat, seed, prompt; strategy settings innermost."""
        return [
            Run(b.label, s, prompt, seed, r)
            for b in self.backbones
            for r in range(self.repeats)
            for seed in self.seeds
            for prompt in self.prompts
            for s in self.settings
            if s.runs_on(b.label)
        ]

    def backbone(self, label: str) -> BackboneSpec:
        return next(b for b in self.backbones if b.label == label)

    def with_backbone(self, name: str, options: Mapping[str, Any] | None = None) -> Suite:
        """The same suite, every strategy on one other backbone (e.g. the fast toy backbone for a smoke test)."""
        return attrs.evolve(
            self,
            backbones=(BackboneSpec(name, dict(options or {})),),
            strategies=tuple(attrs.evolve(spec, backbones=()) for spec in self.strategies),
        )

    def with_prompts(self, prompts: PromptSet) -> Suite:
        """The same suite on other prompts (e.g. a few lines of a file for a smoke test)."""
        prompts = prompts.unique()
        return attrs.evolve(
            self,
            prompts=prompts.prompts,
            prompt_source=prompts.source,
            prompt_metadata=prompts.metadata if any(prompts.metadata) else (),
        )

    # --- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "description": self.description,
            "prompts": list(self.prompts),
            "seeds": list(self.seeds),
            "batch": self.batch,
            "repeats": self.repeats,
            "warmup": self.warmup,
            "sampling": self.sampling,
            "backbones": [attrs.asdict(b) for b in self.backbones],
            "strategies": [attrs.asdict(s) for s in self.strategies],
            **({"metrics": [attrs.asdict(m) for m in self.metrics]} if self.metrics else {}),
        }
        for key in PROMPT_NOTES:  # only when set: suites without them keep their fingerprints
            if getattr(self, key):
                out[key] = list(getattr(self, key)) if key != "prompt_source" else self.prompt_source
        return out

    @property
    def fingerprint(self) -> str:
        """Hash of everything that decides what runs and what is kept of it (metrics keep the images), not
        the name, description or prompt notes."""
        content = {k: v for k, v in self.to_dict().items() if k not in ("name", "description", *PROMPT_NOTES)}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, raw: Any, source: str = "suite", base_dir: str | Path | None = None) -> Suite:
        """A suite from its table; a relative `prompts_file` is read from `base_dir` (default: the cwd)."""
        table = _only_keys(
            source,
            raw,
            (
                "name",
                "description",
                "prompts",
                "prompts_file",
                "prompt_subset",
                "prompt_seed",
                "seeds",
                "batch",
                "repeats",
                "warmup",
                "sampling",
                "backbones",
                "strategies",
                "metrics",
                *PROMPT_NOTES,
            ),
            required=("seeds", "backbones", "strategies"),
        )
        backbones = []
        for i, entry in enumerate(_list_of_tables(source, table, "backbones")):
            entry = _only_keys(f"{source}: backbones[{i}]", entry, ("name", "options", "start", "label"), ("name",))
            backbones.append(
                BackboneSpec(
                    entry["name"],
                    _table(f"{source}: backbones[{i}].options", entry.get("options", {})),
                    _table(f"{source}: backbones[{i}].start", entry.get("start", {})),
                    entry.get("label", ""),
                )
            )
        strategies = []
        for i, entry in enumerate(_list_of_tables(source, table, "strategies")):
            where = f"{source}: strategies[{i}]"
            entry = _only_keys(where, entry, ("name", "params", "grid", "sampling", "backbones"), ("name",))
            strategies.append(
                StrategySpec(
                    entry["name"],
                    _table(f"{where}.params", entry.get("params", {})),
                    _table(f"{where}.grid", entry.get("grid", {})),
                    _sampling_overrides(f"{where}.sampling", entry.get("sampling", {})),
                    _labels(f"{where}.backbones", entry.get("backbones", [])),
                )
            )
        if not isinstance(table["seeds"], list):
            _fail(source, f"seeds must be a list, got {table['seeds']!r}")
        prompts = _prompts(source, table, base_dir)
        return cls(
            name=table.get("name", "suite"),
            backbones=backbones,
            strategies=strategies,
            prompts=prompts.prompts,
            seeds=table["seeds"],
            batch=table.get("batch", 1),
            repeats=table.get("repeats", 1),
            warmup=table.get("warmup", 1),
            sampling=_sampling_overrides(f"{source}: sampling", table.get("sampling", {})),
            description=table.get("description", ""),
            metrics=parse_metrics(source, table.get("metrics", [])),
            prompt_source=prompts.source,
            prompt_metadata=prompts.metadata if any(prompts.metadata) else (),
        )


def _prompts(source: str, table: Mapping[str, Any], base_dir: str | Path | None) -> PromptSet:
    """The suite's prompts: an inline list, a named set (`prompts = "partiprompts"`) or `prompts_file`,
    then a seeded subset (`prompt_subset`, `prompt_seed`); repeated prompts keep their first occurrence
    only when they come from a set or file (an inline list must not repeat itself)."""
    given = [k for k in ("prompts", "prompts_file") if k in table]
    if len(given) != 1:
        _fail(source, "give exactly one of prompts (a list, or a prompt set's name) and prompts_file")
    if "prompt_seed" in table and "prompt_subset" not in table:
        _fail(source, "prompt_seed needs prompt_subset")
    value = table[given[0]]
    if given[0] == "prompts_file":
        if not isinstance(value, str) or not value:
            _fail(source, f"prompts_file must be a path, got {value!r}")
        path = Path(value).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        found = _located(source, lambda: read_prompts_file(path).unique())
        found = attrs.evolve(found, source=f"{value}: {found.source}" if found.source != path.name else value)
    elif isinstance(value, str):
        found = _located(source, lambda: prompt_set(value).unique())
    elif isinstance(value, list):
        metadata = table.get("prompt_metadata") or [{} for _ in value]
        if not isinstance(metadata, list) or not all(isinstance(m, Mapping) for m in metadata):
            _fail(source, f"prompt_metadata must be a list of tables, got {metadata!r}")
        if len(metadata) != len(value):
            _fail(source, f"prompt_metadata needs one entry per prompt ({len(value)}), got {len(metadata)}")
        noted = table.get("prompt_source", "")
        found = PromptSet(value, [dict(m) for m in metadata], noted if isinstance(noted, str) else "")
    else:
        _fail(source, f"prompts must be a list of prompts or a prompt set's name, got {value!r}")
    if "prompt_subset" in table:
        found = _located(source, lambda: found.subset(table["prompt_subset"], table.get("prompt_seed", 0)))
    return found


def _located(source: str, load):
    try:
        return load()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _labels(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        _fail(where, f"must be a list of backbone labels, got {value!r}")
    return tuple(value)


def _list_of_tables(source: str, table: Mapping[str, Any], key: str) -> list[Any]:
    value = table[key]
    if not isinstance(value, list) or not value:
        _fail(source, f"{key} must be a non-empty array of tables ([[{key}]]), got {value!r}")
    return value


def load_suite(source: str | Path) -> Suite:
    """A suite from a TOML file, or the built-in suite of that name."""
    path = Path(source)
    if not path.is_file():
        builtins = builtin_suites()
        if str(source) not in builtins:
            raise ConfigError(
                f"no suite file {str(source)!r} and no built-in suite of that name; "
                f"built-in suites: {', '.join(builtins)}"
            )
        path = builtins[str(source)]
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    raw.setdefault("name", path.stem)
    return Suite.from_dict(raw, source=str(path), base_dir=path.parent)
