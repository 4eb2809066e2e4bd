"""Loading a transformers checkpoint for a backbone: dtype and device choice, placement over devices,
the checkpoint directory's config and model type, its tokenizer and weights, and random models of
a config (tests, experiments). Unreadable or foreign checkpoints become a `CheckpointError`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CheckpointError, ConfigError
from ..core.quiet import quiet_loading

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: `dtype`/`device` value that picks for the machine and the checkpoint (see `choose_dtype`, `parse_device`)
AUTO = "auto"
#: accelerate's named placements of a model over the available devices
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def parse_dtype(value: str | torch.dtype) -> torch.dtype:
    """The torch dtype named by `value` ("float32", "bfloat16", "float16" or a torch.dtype)."""
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in DTYPES:
        return DTYPES[value.removeprefix("torch.")]
    raise ConfigError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {value!r}")


def parse_device(value: str | torch.device) -> torch.device:
    """A torch device that exists on this machine ("auto", "cpu", "cuda", "cuda:1", "mps").

    "auto" is the first CUDA device when there is one, else the CPU; under torchrun (which sets
    $LOCAL_RANK) it is this process's own GPU, so one shard runs per GPU.
    """
    if value == AUTO:
        if not torch.cuda.is_available():
            return torch.device("cpu")
        rank = os.environ.get("LOCAL_RANK", "")
        return torch.device(f"cuda:{int(rank) % torch.cuda.device_count()}" if rank.isdigit() else "cuda")
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be like 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps', got {value!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index is not None and device.index >= count or count == 0:
            raise ConfigError(f"device {value!r} is not available here ({count} CUDA devices); use 'cpu'")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {value!r} is not available here; use 'cpu'")
    elif device.type != "cpu":
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda[:i]' or 'mps', got {value!r}")
    return device


def choose_dtype(value: str | torch.dtype, device: torch.device, stored: torch.dtype | None) -> torch.dtype:
    """The dtype to load in: `value`, or for "auto" bfloat16 on CUDA (what published weights are made
    for) and elsewhere the dtype the checkpoint is stored in (`stored`; float32 when unknown)."""
    if value != AUTO:
        return parse_dtype(value)
    if device.type == "cuda":
        return torch.bfloat16
    return stored if stored in DTYPES.values() else torch.float32


def stored_dtype(config: dict[str, Any]) -> torch.dtype | None:
    """The dtype a checkpoint's config.json says its weights are stored in, if it says one we load."""
    for section in (config, config.get("text_config") or {}, config.get("language_config") or {}):
        name = section.get("dtype") or section.get("torch_dtype") if isinstance(section, dict) else None
        if isinstance(name, str) and name.removeprefix("torch.") in DTYPES:
            return DTYPES[name.removeprefix("torch.")]
    return None


def accelerate_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


def placement(device: torch.device, device_map: Any) -> dict[str, Any]:
    """from_pretrained keywords that put the weights where they run.

    `device_map` (accelerate's "auto", "balanced", "sequential" or a {module: device} dict) spreads a
    model too large for one device; it needs accelerate. Without one, accelerate (when installed) loads
    every tensor straight onto `device`; otherwise the model is loaded on the host in its final dtype
    and moved once.
    """
    if device_map is not None:
        if not (isinstance(device_map, str) and device_map in DEVICE_MAPS or isinstance(device_map, dict)):
            raise ConfigError(
                f"device_map must be one of {sorted(DEVICE_MAPS)} or a {{module: device}} mapping, got {device_map!r}"
            )
        if not accelerate_available():
            raise ConfigError(f"device_map={device_map!r} needs accelerate: pip install 'pardecode[big]'")
        return {"device_map": device_map}
    return {"device_map": str(device)} if accelerate_available() else {}


def read_config(root: Path) -> dict[str, Any]:
    """The parsed config.json of checkpoint directory `root`."""
    path = root / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{str(root)!r} has no config.json: not a transformers checkpoint directory")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def checkpoint_dir(
    path: str | Path, model_types: Sequence[str], family: str, foreign: dict[str, str] | None = None
) -> Path:
    """The checkpoint directory `path`, checked to hold a transformers model of one of `model_types`.

    `foreign` maps the model_type of a known non-transformers layout of the family to what to do with it.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CheckpointError(f"{family} checkpoint directory {str(root)!r} does not exist")
    model_type = read_config(root).get("model_type")
    if model_type in (foreign or {}):
        raise CheckpointError(
            f"{str(root)!r} holds {family} in its original {model_type!r} layout: {foreign[model_type]}"
        )
    if model_type not in model_types:
        raise CheckpointError(
            f"{str(root)!r} holds a {model_type!r} model, but the {family} adapter reads model_type "
            f"{' or '.join(repr(t) for t in model_types)}"
        )
    return root


def load_tokenizer(source: Any, family: str) -> Any:
    """A tokenizer object, loaded with AutoTokenizer when `source` is a directory."""
    if source is None:
        raise ConfigError(f"the {family} backbone needs a tokenizer (a directory or tokenizer object)")
    if isinstance(source, (str, Path)):
        from transformers import AutoTokenizer

        try:
            with quiet_loading():
                return AutoTokenizer.from_pretrained(str(source))
        except (OSError, ValueError, ImportError) as err:  # older transformers: ImportError (protobuf)
            raise CheckpointError(f"cannot load a tokenizer from {str(source)!r}: {one_line(err)}") from None
    if not callable(source):
        raise ConfigError(f"tokenizer must be a directory or a tokenizer object, got {type(source).__name__}")
    return source


def load_pretrained(
    path: str | Path,
    *,
    family: str,
    model_types: Sequence[str],
    model_class: Any,
    tokenizer: Any,
    dtype: str | torch.dtype,
    device: str | torch.device,
    device_map: Any = None,
    foreign: dict[str, str] | None = None,
    reshaped: Collection[str] = (),
) -> tuple[Path, Any, Any]:
    """(root, tokenizer, model): the `model_class` checkpoint in directory `path`, on `device`.

    The tokenizer is the checkpoint's own unless `tokenizer` (a directory or tokenizer object)
    overrides it. Weights are read in their final dtype (see `choose_dtype`), never as a float32 copy,
    and placed by `placement`. `reshaped` names weights stored in another shape, which the caller
    fills in after loading; any other shape mismatch is a CheckpointError.
    """
    root = checkpoint_dir(path, model_types, family, foreign)
    device = parse_device(device)
    dtype = choose_dtype(dtype, device, stored_dtype(read_config(root)))
    where = placement(device, device_map)
    tokenizer = load_tokenizer(root if tokenizer is None else tokenizer, family)
    options = {"ignore_mismatched_sizes": True, "output_loading_info": True} if reshaped else {}
    try:
        with quiet_loading():
            model = model_class.from_pretrained(str(root), dtype=dtype, **where, **options)
    except Exception as err:  # truncated or foreign weights: SafetensorError, OSError, RuntimeError, ...
        raise CheckpointError(f"cannot load the {family} weights in {str(root)!r}: {one_line(err)}") from None
    if reshaped:
        model, info = model
        unexpected = sorted(key for key, *_ in info["mismatched_keys"] if key not in reshaped)
        if unexpected:
            raise CheckpointError(f"{str(root)!r}: weights of unexpected shape for {family}: {unexpected[:5]}")
    if not where:
        model = model.to(device)
    return root, tokenizer, model


@contextlib.contextmanager
def safetensors_file(path: str | Path) -> Iterator[Any]:
    """`safetensors.safe_open(path)`, with an unreadable or truncated file as a CheckpointError."""
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as err:  # SafetensorError, OSError
        raise CheckpointError(f"cannot read weights file {str(path)!r}: {one_line(err)}") from None
    with handle as f:
        yield f


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception as one short line: its type and the start of its message."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_random(
    config: Any,
    *,
    family: str,
    config_class: type,
    model_class: Any,
    tokenizer: Any,
    dtype: str | torch.dtype,
    device: str | torch.device,
) -> tuple[Any, Any]:
    """(tokenizer, model): a randomly initialised `model_class` of `config`, which must be a `config_class`.

    On the CPU the model is drawn in float32 and then cast; on an accelerator it is built where it runs,
    in its final dtype, so a 7B model never exists as a float32 copy (28 GB) anywhere.
    """
    if not isinstance(config, config_class):
        raise ConfigError(f"config must be a transformers {config_class.__name__}, got {type(config).__name__}")
    device = parse_device(device)
    dtype = choose_dtype(dtype, device, None)
    tokenizer = load_tokenizer(tokenizer, family)
    if device.type == "cpu":
        model = model_class(config)
    else:
        with torch.device(device), _default_dtype(dtype):
            model = model_class(config)
    return tokenizer, model.to(device=device, dtype=dtype)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """New floating-point tensors are `dtype` inside (parameters created without an explicit dtype)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
