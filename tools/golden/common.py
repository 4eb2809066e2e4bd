"""What the golden-fixture makers share: the official checkout on sys.path, versions, the fixture JSON.

Each make_<family>_fixture.py runs in a virtualenv with the versions the official code pins (see
docs/checkpoints.md) and imports the official code from a checkout given with --official; nothing of
that code is copied here.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the prompts every fixture decodes (short: the tiny models read one token per character)
PROMPTS = ["a red fox in the snow", "an old lighthouse at dusk"]
#: how many of the first step's largest guided logits a fixture keeps (with their token ids)
TOP_LOGITS = 32


def arguments(description: str, default_out: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of the official repository")
    parser.add_argument("--out", type=Path, default=Path(default_out), help="the fixture directory to (re)write")
    parser.add_argument("--commit", help="the official commit, recorded when the checkout is not a git work tree")
    return parser.parse_args()


def official_commit(root: Path, given: str | None = None) -> str | None:
    """`given`, else the checkout's git commit when it is a git work tree (an exported archive has none)."""
    if given:
        return given
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def versions(*modules: Any) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for module in modules:
        found[module.__name__] = getattr(module, "__version__", "?")
    return found


def on_path(*paths: Path) -> None:
    for p in reversed(paths):
        sys.path.insert(0, str(p.resolve()))


def top_logits(logits: Any, allowed: Any) -> dict[str, list]:
    """The TOP_LOGITS largest of Float[V] `logits` among the Long `allowed` ids: {"ids", "values"}."""
    values = logits[allowed]
    order = values.argsort(descending=True)[:TOP_LOGITS]
    return {"ids": allowed[order].tolist(), "values": [float(v) for v in values[order]]}


def write_fixture(out: Path, data: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fixture.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
