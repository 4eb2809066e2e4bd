"""The metrics a suite names (`metrics = ["fid", "clip"]`), and their scores of each setting's images.

A suite's `metrics` entry is a list of names, or of tables `{ name = "fid", options = { stats = "..." } }`;
every name must be a registered metric (`pardecode list`), and each metric is built once when the
suite is read, so bad options fail before any model runs. Metrics score a setting's repeat-0 images
of every seed and prompt pooled, at report time, from the images the runs stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ..core.errors import ConfigError


@attrs.frozen
class MetricSpec:
    """A registered metric's name and the options its factory is called with."""

    name: str
    options: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self):
        self.build()  # unknown names (UnknownNameError lists the registered ones) and bad options fail now

    def build(self):
        from ..core.plugins import plugins

        factory = plugins().metrics.get(self.name).factory
        try:
            return factory(**self.options)
        except TypeError as err:
            raise ConfigError(f"suite: metric {self.name!r}: {err}") from None
        except ConfigError as err:
            raise ConfigError(f"suite: metric {self.name!r}: {err}") from None


def parse_metrics(where: str, value: Any) -> tuple[MetricSpec, ...]:
    """`metrics` of a suite file: names, or tables with `name` and optional `options`."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: metrics must be a list of metric names or {{name, options}} tables, got {value!r}")
    specs = []
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            specs.append(MetricSpec(entry))
            continue
        if not isinstance(entry, Mapping) or "name" not in entry or set(entry) - {"name", "options"}:
            raise ConfigError(f"{where}: metrics[{i}] must be a name or a table with keys name, options; got {entry!r}")
        if not isinstance(entry.get("options", {}), Mapping):
            raise ConfigError(f"{where}: metrics[{i}].options must be a table, got {entry['options']!r}")
        specs.append(MetricSpec(entry["name"], dict(entry.get("options", {}))))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: metrics names a metric twice: {names}")
    return tuple(specs)


@attrs.frozen
class MetricScore:
    """One metric's numbers for one setting, with what exactly was computed."""

    metric: str
    values: dict[str, float]
    n: int  # images scored
    variant: str


def pooled_images(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray | None, list[str]]:
    """Repeat-0 images of every record (seeds and prompts pooled) and the prompt of each."""
    from .quality import unpack_images

    images, prompts = [], []
    for r in records:
        if r["key"]["repeat"] == 0 and r.get("images") is not None:
            batch = unpack_images(r["images"])
            images.append(batch)
            prompts += [r["key"]["prompt"]] * len(batch)
    return (np.concatenate(images) if images else None), prompts


def score_setting(records: Sequence[dict[str, Any]], metrics: Sequence[Any]) -> list[MetricScore]:
    """Every metric's score of one setting's pooled images (none without stored images or with fewer than 2)."""
    images, prompts = pooled_images(records)
    if images is None or len(images) < 2:
        return []
    return [MetricScore(m.name, m.score(images, prompts), len(images), m.variant) for m in metrics]
