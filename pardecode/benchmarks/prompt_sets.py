"""Prompt sets as data: the field's evaluation prompts, prompt files, and seeded subsets.

Named sets: `partiprompts` and `geneval` ship with pardecode (`prompts/`, see PROVENANCE.md there);
`coco2017-5k` is built from the user's own copy of MS-COCO's `captions_val2017.json` (not shipped),
one caption per image by a fixed rule (`coco_captions`). Files: `.txt` (one prompt per line),
`.jsonl` (a "prompt" field; the other fields are kept as the prompt's metadata, e.g. GenEval's
object classes), or a COCO captions `.json`. A subset is drawn by hashing (seed, index), so the same
seed picks the same prompts on every machine and Python version, in the set's own order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..core.errors import ConfigError

DATA_DIR = Path(__file__).resolve().parent / "prompts"
COCO_ENV = "PARDECODE_COCO_CAPTIONS"
COCO_URL = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
COCO_SIZE = 5000


@attrs.frozen
class PromptSet:
    """Prompts in order, each with its metadata (a dict, possibly empty), and where they came from."""

    prompts: tuple[str, ...] = attrs.field(converter=tuple)
    metadata: tuple[dict[str, Any], ...] = attrs.field(converter=tuple)
    source: str

    def __attrs_post_init__(self):
        if len(self.metadata) != len(self.prompts):
            raise ConfigError(f"{self.source}: one metadata entry per prompt needed")

    def __len__(self) -> int:
        return len(self.prompts)

    def unique(self) -> PromptSet:
        """The first occurrence of every prompt (suites identify a run by its prompt)."""
        seen: dict[str, int] = {}
        for i, p in enumerate(self.prompts):
            seen.setdefault(p, i)
        keep = sorted(seen.values())
        return PromptSet([self.prompts[i] for i in keep], [self.metadata[i] for i in keep], self.source)

    def subset(self, size: int, seed: int = 0) -> PromptSet:
        """`size` prompts chosen by `seed`, kept in the set's order; the whole set if size >= its length."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigError(f"prompt_subset must be an integer >= 1, got {size!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"prompt_seed must be an integer >= 0, got {seed!r}")
        if size >= len(self.prompts):
            return self
        rank = sorted(range(len(self.prompts)), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
        keep = sorted(rank[:size])
        return PromptSet(
            [self.prompts[i] for i in keep],
            [self.metadata[i] for i in keep],
            f"{self.source or 'prompts'}, subset of {size} (seed {seed})",
        )


def _normalise(text: str) -> str:
    return " ".join(text.split())


def coco_captions(path: str | Path, size: int = COCO_SIZE) -> PromptSet:
    """One caption per image from a COCO captions file (`captions_val2017.json` for the 5k set).

    The rule: images in increasing id; per image its captions in increasing annotation id, whitespace
    collapsed, and the first that no earlier image has taken (so the prompts are distinct; an image
    all of whose captions were taken is skipped); the first `size` images that yield a caption.
    Metadata: the image's `image_id`, `file_name` and the caption's `annotation_id`.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = sorted(data["images"], key=lambda im: im["id"])
        by_image: dict[int, list[Mapping[str, Any]]] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{path}: not a COCO captions file (images, annotations with image_id and caption): {err}"
        ) from None
    prompts, metadata, taken = [], [], set()
    for image in images:
        for ann in sorted(by_image.get(image["id"], ()), key=lambda a: a["id"]):
            caption = _normalise(str(ann["caption"]))
            if caption and caption not in taken:
                taken.add(caption)
                prompts.append(caption)
                metadata.append(
                    {"image_id": image["id"], "file_name": image.get("file_name"), "annotation_id": ann["id"]}
                )
                break
        if len(prompts) == size:
            break
    return PromptSet(prompts, metadata, f"{path.name}: one caption per image, {len(prompts)} images")


def coco_captions_file() -> Path:
    """Where the user's `captions_val2017.json` is: $PARDECODE_COCO_CAPTIONS, else the cache directory."""
    given = os.environ.get(COCO_ENV)
    if given:
        return Path(given).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pardecode" / "coco" / "captions_val2017.json"


def _coco_5k() -> PromptSet:
    path = coco_captions_file()
    if not path.is_file():
        raise ConfigError(
            f"prompt set 'coco2017-5k' needs MS-COCO's captions_val2017.json (CC BY 4.0; in {COCO_URL}): "
            f"no file at {path}; set {COCO_ENV}=/path/to/captions_val2017.json or put it there"
        )
    found = coco_captions(path)
    return attrs.evolve(found, source=f"coco2017-5k ({found.source})")


def _partiprompts() -> PromptSet:
    lines = (DATA_DIR / "partiprompts.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
    return PromptSet(
        [r.pop("Prompt").strip() for r in rows],
        [{k.lower(): v for k, v in r.items() if v} for r in rows],
        "partiprompts (google-research/parti PartiPrompts.tsv)",
    )


def _geneval() -> PromptSet:
    found = read_prompts_file(DATA_DIR / "geneval.jsonl")
    return attrs.evolve(found, source="geneval (djghosh13/geneval prompts/evaluation_metadata.jsonl)")


#: name -> loader of every named prompt set
PROMPT_SETS = {"coco2017-5k": _coco_5k, "partiprompts": _partiprompts, "geneval": _geneval}


def prompt_set(name: str) -> PromptSet:
    """The named prompt set; an unknown name is refused in one line listing the known ones."""
    if name not in PROMPT_SETS:
        raise ConfigError(f"unknown prompt set {name!r}; known prompt sets: {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[name]()


def _from_lines(lines: Iterable[str], source: str) -> PromptSet:
    prompts = [line.strip() for line in lines if line.strip()]
    return PromptSet(prompts, [{} for _ in prompts], source)


def read_prompts_file(path: str | Path) -> PromptSet:
    """Prompts from `.txt` (one per line, blank lines skipped), `.jsonl` (a "prompt" field per line,
    other fields kept as metadata) or a COCO captions `.json` (the one-caption-per-image rule)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"prompts file {str(path)!r} does not exist")
    if path.suffix == ".json":
        return coco_captions(path, size=10**9)
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        found = _from_lines(text.splitlines(), path.name)
    else:
        prompts, metadata = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise ConfigError(f"{path}:{number}: not a JSON object") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str) or not entry["prompt"].strip():
                raise ConfigError(
                    f"{path}:{number}: needs a non-empty string field 'prompt', got {line.strip()[:80]!r}"
                )
            prompts.append(entry.pop("prompt").strip())
            metadata.append(entry)
        found = PromptSet(prompts, metadata, path.name)
    if not found.prompts:
        raise ConfigError(f"prompts file {str(path)!r} holds no prompt")
    return found
