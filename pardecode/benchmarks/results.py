"""The output directory of a suite: its fingerprint, per-shard results files, session notes.

    DIR/suite.json                      the suite as run, with its fingerprint
    DIR/results.jsonl                   one record per finished run (single process)
    DIR/results.shard-i-of-n.jsonl      the same for shard i of n (one writer per file)
    DIR/sessions[.shard-i-of-n].jsonl   the environment of every process that ran runs

Records are appended and flushed one by one, so a killed process loses at most the run in flight;
a torn last line is cut off before appending again. Readers take every results file in DIR, so a
report covers all shards and a resumed suite skips runs any shard finished.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ..core.errors import ConfigError
from .suite import Suite, run_id

SUITE_FILE = "suite.json"


@attrs.frozen
class Shard:
    """Process `index` of `count` takes every count-th run, starting at its index (interleaving kept)."""

    index: int = 0
    count: int = 1

    def __attrs_post_init__(self):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.index, self.count))
        if not ok or self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard must be i/n with n >= 1 and 0 <= i < n, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, _, count = text.partition("/")
        try:
            return cls(int(index), int(count))
        except ValueError:
            raise ConfigError(f"shard must be i/n (e.g. 0/2 for the first of two), got {text!r}") from None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Shard:
        """RANK / WORLD_SIZE as torchrun and accelerate set them; one shard when they are absent."""
        env = os.environ if env is None else env
        if "RANK" in env and "WORLD_SIZE" in env:
            return cls.parse(f"{env['RANK']}/{env['WORLD_SIZE']}")
        return cls()

    def takes(self, position: int) -> bool:
        return position % self.count == self.index

    def file_name(self, stem: str) -> str:
        return f"{stem}.jsonl" if self.count == 1 else f"{stem}.shard-{self.index}-of-{self.count}.jsonl"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _append_line(path: Path, item: dict[str, Any]) -> None:
    """Append one JSON line durably, first cutting off a torn line a killed writer left behind."""
    if path.exists() and path.stat().st_size:
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
    with path.open("a") as f:
        f.write(json.dumps(item, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a killed writer: that run simply reruns


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@attrs.frozen
class ResultsDir:
    path: Path = attrs.field(converter=Path)

    def claim(self, suite: Suite) -> None:
        """Make DIR this suite's: refuse a directory holding results of a different suite."""
        stored = self.stored_suite_info()
        if stored is not None and stored["fingerprint"] != suite.fingerprint and self.results_files():
            raise ConfigError(
                f"{self.path} holds results of suite {stored['suite'].get('name')!r} (fingerprint "
                f"{stored['fingerprint']}), not of this suite {suite.name!r} (fingerprint {suite.fingerprint}); "
                "choose another --out directory"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        if stored is None or stored["fingerprint"] != suite.fingerprint:
            _write_atomic(
                self.path / SUITE_FILE,
                json.dumps({"fingerprint": suite.fingerprint, "suite": suite.to_dict()}, indent=1),
            )

    def stored_suite_info(self) -> dict[str, Any] | None:
        file = self.path / SUITE_FILE
        if not file.is_file():
            if self.results_files():
                raise ConfigError(
                    f"{self.path} holds results files but no {SUITE_FILE}; cannot tell which suite made them"
                )
            return None
        return json.loads(file.read_text())

    def suite(self) -> Suite:
        """The suite that wrote DIR (for reports and merges)."""
        info = self.stored_suite_info()
        if info is None:
            raise ConfigError(f"{self.path} holds no benchmark results ({SUITE_FILE} is missing)")
        return Suite.from_dict(info["suite"], source=str(self.path / SUITE_FILE))

    def results_files(self) -> list[Path]:
        return sorted(self.path.glob("results*.jsonl")) if self.path.is_dir() else []

    def records(self) -> list[dict[str, Any]]:
        """Every finished run of every shard, once each (the first record of a run wins)."""
        seen: dict[str, dict[str, Any]] = {}
        for file in self.results_files():
            for record in _read_lines(file):
                seen.setdefault(run_id(record["key"]), record)
        return list(seen.values())

    def done(self) -> set[str]:
        return {run_id(r["key"]) for r in self.records()}

    def append(self, shard: Shard, record: dict[str, Any]) -> None:
        _append_line(self.path / shard.file_name("results"), record)

    def note_session(self, shard: Shard, environment: dict[str, Any]) -> None:
        _append_line(self.path / shard.file_name("sessions"), environment)

    def sessions(self) -> list[dict[str, Any]]:
        return [s for f in sorted(self.path.glob("sessions*.jsonl")) for s in _read_lines(f)]

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise writers of `name` (shards finishing together): the last to take it read the most."""
        with (self.path / f".{name}.lock").open("w") as handle:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX: no locking
                yield
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        _write_atomic(path, text)
        return path
