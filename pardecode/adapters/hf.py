"""Shared machinery of backbones built on transformers causal language models.

A family adapter (Chameleon, Emu3, ...) only turns prompts into token rows and a `TokenLayout`
(`HFBackbone.encode`); everything that touches the model at decode time lives here: left-padded
prompt rows, the classifier-free-guidance rows stacked under the conditional ones so both branches
share one forward pass, position ids derived from span offsets (so holes in the cache never shift
positions), the additive 4D mask that hides padding and holes, the DynamicCache, its crop and compaction.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..core.backbone import Backbone, NoisyInputs, Scores, Session, Window
from ..core.config import SamplingConfig
from ..core.errors import CheckpointError, ConfigError
from ..core.layout import TokenLayout
from ..core.noise import NoiseConditioning
from ..core.quiet import quiet_loading
from .kv import ReservedLayer, reserved_cache

_B = TypeVar("_B", bound="HFBackbone")

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

    "auto" is the first CUDA device when there is one, else the CPU.
    """
    if value == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
        raise CheckpointError(f"{str(root)!r} holds {family} in its original {model_type!r} layout: {foreign[model_type]}")
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
    """(tokenizer, model): a randomly initialised `model_class` of `config`, which must be a `config_class`."""
    if not isinstance(config, config_class):
        raise ConfigError(f"config must be a transformers {config_class.__name__}, got {type(config).__name__}")
    device = parse_device(device)
    dtype = choose_dtype(dtype, device, None)
    tokenizer = load_tokenizer(tokenizer, family)
    model = model_class(config).to(device=device, dtype=dtype)
    return tokenizer, model


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without the special tokens the tokenizer would add on its own."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def token_id(tokenizer: Any, name: str) -> int:
    """The id of the single token spelled `name`; a CheckpointError if the vocabulary lacks it."""
    tid = tokenizer.convert_tokens_to_ids(name)
    if tid is None or tid == tokenizer.unk_token_id and name != tokenizer.unk_token:
        raise CheckpointError(f"the tokenizer has no token {name!r}")
    return int(tid)


def check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise ConfigError("prompts must be a sequence of strings, got a single string; wrap it in a list")
    prompts = list(prompts)
    if not prompts:
        raise ConfigError("prompts must hold at least one prompt, got an empty sequence")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"prompt {i} must be a non-empty string, got {p!r}")
    return prompts


def check_pixel_size(size: Any) -> None:
    """A ConfigError unless `size` is (width, height) in whole positive pixels."""
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ConfigError(f"size must be (width, height) in pixels, got {size!r}")


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Long[R, P] ids, Bool[R, P] valid): rows right-aligned so every row's next slot is the same."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):  # once per session, not per token
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            valid[i, width - len(r) :] = True
    return ids, valid


def cache_keyword(body: nn.Module) -> str:
    """The keyword `body.forward` takes its KV cache by: `cache` since transformers 5.24,
    `past_key_values` before (5.24 still accepts it, with a FutureWarning)."""
    known = getattr(body, "_pardecode_cache_keyword", None)  # read before the forward was compiled
    if known:
        return known
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def additive_mask(key_valid: torch.Tensor, q: int, dtype: torch.dtype) -> torch.Tensor:
    """Float[R, 1, q, K] mask (0 attend, finfo.min hide) for the last `q` of K slots.

    A query sees earlier-or-same slots that are valid for its row; it always sees itself, so padded
    queries (whose outputs nobody reads) stay finite.
    """
    k = key_valid.shape[1]
    q_slot = torch.arange(k - q, k, device=key_valid.device)[:, None]
    k_slot = torch.arange(k, device=key_valid.device)[None, :]
    allowed = ((k_slot <= q_slot)[None] & key_valid[:, None, :]) | (k_slot == q_slot)[None]
    return _additive(allowed, dtype)


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float[R, 1, q, K] from Bool[R, q, K]: 0 where a query may attend, finfo.min where not (a
    boolean 4D mask is read wrongly by eager attention)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def placed_mask(prompt_valid: torch.Tensor, attention: torch.Tensor, first: bool, dtype: torch.dtype) -> torch.Tensor:
    """Float[R, 1, q (+ P at the first pass), P + K] additive mask for placed slots (core.fronts).

    Span inputs see every valid prompt token and the span slots `attention` (Bool[R, q, K]) allows;
    at the first pass the prompt's own queries come first, causal over the valid prompt.
    """
    rows, q, k = attention.shape
    p = prompt_valid.shape[1]
    allowed = torch.cat([prompt_valid[:, None, :].expand(rows, q, p), attention], 2)
    if first:
        causal = torch.ones(p, p, dtype=torch.bool, device=attention.device).tril()
        prompt = (causal[None] & prompt_valid[:, None, :]) | torch.eye(p, dtype=torch.bool, device=attention.device)[None]
        allowed = torch.cat([torch.cat([prompt, prompt.new_zeros(rows, p, k)], 2), allowed], 1)
    return _additive(allowed, dtype)


@attrs.frozen
class Encoded:
    """What a family adapter makes of a batch of prompts: token rows and the layout to generate."""

    cond: list[list[int]]  # one prompt row per generation row
    uncond: list[list[int]] | None  # the CFG branch, one row per generation row (None: no guidance)
    layout: TokenLayout

    def __attrs_post_init__(self):
        if self.uncond is not None and len(self.uncond) != len(self.cond):
            raise ConfigError(f"{len(self.uncond)} unconditional rows for {len(self.cond)} prompts")


class HFSession(Session):
    """One batch decoded on a transformers decoder body + lm_head, CFG rows stacked under cond rows.

    Model rows: r < B are the conditional rows, r >= B the unconditional ones (row r - B's guidance
    branch); both are fed the same window, so one forward pass scores both branches.
    """

    supports_attention = True

    def __init__(
        self,
        body: nn.Module,
        head: nn.Module,
        encoded: Encoded,
        pad_id: int,
        device: torch.device,
        noise: NoiseConditioning | None = None,
        span_embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.body, self.head, self.encoded, self.noise = body, head, encoded, noise
        self.span_embed = span_embed  # None: span tokens share the prompt's embedding table
        self.layout = encoded.layout
        self.batch = len(encoded.cond)
        self.branches = 1 if encoded.uncond is None else 2
        ids, valid = left_pad(encoded.cond + (encoded.uncond or []), pad_id)
        self.device = device
        self._prompt_ids = ids.to(device)
        self._prompt_valid = valid.to(device)
        self._prompt_len = valid.sum(1, keepdim=True).to(device)  # Long[R, 1]
        self._prompt_pos = (valid.long().cumsum(1) - 1).clamp(min=0).to(device)
        self._padded = not bool(valid.all())
        self._dtype = next(body.parameters()).dtype
        self._cache_keyword = cache_keyword(body)
        self._cache: DynamicCache | None = None
        self.span_slots = 0  # generated-span slots in the cache
        self._live: torch.Tensor | None = None  # model rows still computed (None: all)

    def _live_rows(self, t: torch.Tensor) -> torch.Tensor:
        """A per-model-row tensor kept to the rows still computed."""
        return t if self._live is None else t[self._live]

    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        """A per-generation-row tensor repeated for every CFG branch, kept to the live model rows."""
        return self._live_rows(t if self.branches == 1 else torch.cat([t, t], 0))

    def _retire(self, active: torch.Tensor) -> None:
        """Stop computing finished rows: drop their model rows from the cache for good."""
        live = self._live if self._live is not None else torch.arange(self.batch * self.branches, device=self.device)
        wanted = active.to(self.device).repeat(self.branches)
        keep = wanted[live]
        if int(keep.sum()) != int(wanted.sum()):
            raise ConfigError("window.active marks a row active again after it had finished")
        if not bool(keep.all()):
            self._cache.batch_select_indices(keep.nonzero().squeeze(1))
            self._live = live[keep]

    def _check(self, window: Window) -> None:
        b, q = window.tokens.shape
        if b != self.batch or window.offsets.shape != (b, q):
            raise ConfigError(
                f"window tokens {tuple(window.tokens.shape)} / offsets {tuple(window.offsets.shape)} "
                f"must both be [batch={self.batch}, q]"
            )
        if window.key_valid.shape != (b, self.span_slots + q):
            raise ConfigError(
                f"window.key_valid must be [{b}, {self.span_slots} cached + {q} new], "
                f"got {tuple(window.key_valid.shape)}"
            )
        if window.first != (self._cache is None):
            state = "before any pass" if self._cache is None else "after the first pass"
            raise ConfigError(f"window.first={window.first} {state}: the first pass feeds the prompt once")

    def _inputs(self, window: Window) -> dict[str, torch.Tensor]:
        """input_ids, or inputs_embeds for noisy drafts or a separate span embedding; prompt first at pass one."""
        ids = self._rows(window.tokens.to(self.device))
        if window.noisy is None and self.span_embed is None:
            return {"input_ids": torch.cat([self._prompt_ids, ids], 1) if window.first else ids}
        embed = self.body.get_input_embeddings()
        embeds = (self.span_embed or embed)(ids)
        if window.noisy is not None:
            if self.noise is None:
                raise ConfigError("this backbone takes no noisy inputs: its checkpoint has no noise conditioning")
            noisy = NoisyInputs(embeds=self._rows(window.noisy.embeds), level=self._rows(window.noisy.level))
            embeds = self.noise.inputs_embeds(embeds, noisy)
        return {"inputs_embeds": torch.cat([embed(self._prompt_ids), embeds], 1) if window.first else embeds}

    @torch.inference_mode()
    def forward(self, window: Window) -> Scores:
        self._check(window)
        if window.active is not None and not window.first:
            self._retire(window.active)
        q = window.tokens.shape[1]
        inputs = self._inputs(window)
        positions = self._live_rows(self._prompt_len) + self._rows(window.offsets.to(self.device))
        keys = torch.cat([self._live_rows(self._prompt_valid), self._rows(window.key_valid.to(self.device))], 1)
        if window.first:  # room for the prompt, the span and a wide window before any re-allocation
            room = self._prompt_ids.shape[1] + self.layout.length + q + 1
            self._cache = reserved_cache(self.body.config, room)
            positions = torch.cat([self._prompt_pos, positions], 1)
        fed = positions.shape[1]
        # slots and positions coincide without padding and holes: plain causal attention suffices
        if window.attention is not None:  # placed slots: the loop's own attention structure
            mask = placed_mask(self._live_rows(self._prompt_valid), self._rows(window.attention.to(self.device)), window.first, self._dtype)
        else:
            mask = additive_mask(keys, fed, self._dtype) if self._padded or window.has_holes else None
        cache = {self._cache_keyword: self._cache}
        hidden = self.body(**inputs, attention_mask=mask, position_ids=positions, **cache, use_cache=True).last_hidden_state
        # .to: under a multi-device device_map the head may sit on another device than the inputs
        logits = self.head(hidden[:, -(q + 1 if window.first else q) :]).float().to(self.device)
        self.span_slots += q
        if self._live is not None:  # finished rows: zeros, which the loop never reads
            full = logits.new_zeros(self.batch * self.branches, *logits.shape[1:])
            logits = full.index_copy_(0, self._live, logits)
        b = self.batch
        return Scores(cond=logits[:b], uncond=logits[b:] if self.branches == 2 else None)

    def crop(self, n: int) -> None:
        if not 0 <= n <= self.span_slots:
            raise ConfigError(f"crop needs 0 <= n <= {self.span_slots} cached span slots, got {n}")
        if n:  # crop(0) emptied the whole cache in transformers 4.x
            self._cache.crop(-n)
            self.span_slots -= n

    @torch.inference_mode()
    def compact(self, index: torch.Tensor) -> bool:
        layers = getattr(self._cache, "layers", None)
        if not layers or not all(type(layer) in (DynamicLayer, ReservedLayer) and layer.is_initialized for layer in layers):
            return False  # sliding-window or quantised caches keep their holes
        rows = self._rows(index.to(self.device))
        prompt = self._prompt_ids.shape[1]
        kept = prompt + index.shape[1]
        for layer in layers:  # gather the kept slots, then write them back in place at the front
            heads, _, dim = layer.keys.shape[1:]
            at = rows.to(layer.keys.device)[:, None, :, None].expand(-1, heads, -1, dim)  # layers may be spread
            keys, values = layer.keys[..., prompt:, :].gather(2, at), layer.values[..., prompt:, :].gather(2, at)
            layer.keys, layer.values = layer.keys[..., :kept, :], layer.values[..., :kept, :]
            layer.keys[..., prompt:, :].copy_(keys)
            layer.values[..., prompt:, :].copy_(values)
        self.span_slots = index.shape[1]
        return True


class HFBackbone(Backbone):
    """A transformers decoder `body` (returns last_hidden_state) + `head` (lm_head) image generator.

    Subclasses implement `encode` (the family's prompt template, CFG rows and layout) and may
    override `images`; they list the `start` options they accept in `start_options` and set
    `image_tokens` (Long[K], the ids an image cell may hold).

    A checkpoint fine-tuned for denoising strategies ships a `NoiseConditioning` module
    (`noise_conditioning.safetensors`); with it the backbone is `noise_ready` and reads noisy windows.
    """

    start_options: tuple[str, ...] = ()
    image_tokens: torch.Tensor
    noise: NoiseConditioning | None = None

    def __init__(
        self,
        *,
        body: nn.Module,
        head: nn.Module,
        tokenizer: Any,
        context: int,
        pad_id: int,
        vocab_size: int | None = None,
        span_embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        """`head` maps hidden states to `vocab_size` logits (default: its out_features); `span_embed`
        embeds generated tokens when they live in a vocabulary of their own (Janus)."""
        self.body, self.head, self.tokenizer = body.eval(), head.eval(), tokenizer
        self.context = context
        self.pad_id = pad_id
        self.device = next(body.parameters()).device
        self.vocab_size = vocab_size if vocab_size is not None else head.out_features
        self.span_embed = span_embed
        self._normaliser: NoiseConditioning | None = None

    @abc.abstractmethod
    def encode(self, prompts: list[str], sampling: SamplingConfig, **options: Any) -> Encoded:
        """Token rows (cond, and uncond when `sampling.uses_cfg`) and the layout for `prompts`."""

    def start(self, prompts: Sequence[str], sampling: SamplingConfig | None = None, **options: Any) -> HFSession:
        prompts = check_prompts(prompts)
        sampling = sampling or self.default_sampling
        unknown = sorted(set(options) - set(self.start_options))
        if unknown:
            allowed = ", ".join(self.start_options) or "none"
            raise ConfigError(f"unknown option(s) {unknown} for backbone {self.name!r}; allowed: {allowed}")
        encoded = self.encode(prompts, sampling, **options)
        if not sampling.uses_cfg:
            encoded = attrs.evolve(encoded, uncond=None)
        self.check_context(encoded)
        return HFSession(self.body, self.head, encoded, self.pad_id, self.device, self.noise, self.span_embed)

    # --- noise conditioning (denoising strategies) ------------------------------------------
    def with_checkpoint_noise(self: _B, root: Path) -> _B:
        """This backbone with the noise conditioning of checkpoint `root` attached, if it ships one.

        Only SJD2-fine-tuned checkpoints do; without one the backbone reads no noisy inputs.
        """
        self.attach_noise(NoiseConditioning.load(root))
        return self

    def attach_noise(self, noise: NoiseConditioning | None) -> None:
        """Use `noise` to read noisy inputs (None detaches); its width must match the embeddings."""
        if noise is not None:
            if noise.dim != self.embed_dim():
                raise CheckpointError(f"noise conditioning of width {noise.dim} for embeddings of width {self.embed_dim()}")
            noise = noise.to(self.device).eval()
        self.noise = noise
        self._normaliser = noise

    def span_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Float[..., D] input embeddings of generated-span tokens."""
        return (self.span_embed or self.body.get_input_embeddings())(tokens.to(self.device))

    def embed_dim(self) -> int:
        return self.body.get_input_embeddings().embedding_dim

    def noise_ready(self) -> bool:
        return self.noise is not None

    def normaliser(self) -> NoiseConditioning:
        """The module whose mean/std define the normalised embedding space.

        Without fine-tuned conditioning, the statistics of the image-token embedding rows (what a
        fine-tune starts from).
        """
        if self._normaliser is None:
            with torch.no_grad():
                table = self.span_embedding(self.image_tokens)
            self._normaliser = NoiseConditioning.for_embeddings(table).to(self.device).eval()
        return self._normaliser

    @torch.no_grad()
    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.normaliser().normalize(self.span_embedding(tokens))

    def compile(self) -> None:
        """Run the decoder body's forward through `torch.compile` (graph capture; opt-in).

        Measured on the default model on a 2-core CPU: about 40 s of compilation, a recompilation
        at every new window width and cache length (the dynamic KV cache changes shapes each pass),
        and no faster pass at 1 to 17 positions, so it is off by default; on a GPU with a fixed
        window it may pay. The cache keyword is read from the eager forward first.
        """
        self.body._pardecode_cache_keyword = cache_keyword(self.body)  # a wrapper may hide the signature
        self.body.forward = torch.compile(self.body.forward, dynamic=True)

    def check_context(self, encoded: Encoded) -> None:
        """A ConfigError unless every prompt row plus the generated span fits the model's context."""
        longest = max(len(r) for r in encoded.cond + (encoded.uncond or []))
        span = encoded.layout.length
        if longest >= self.context:
            raise ConfigError(
                f"a prompt of {longest} tokens does not fit the context of {self.context} positions; "
                "shorten the prompt"
            )
        if longest + span > self.context:
            raise ConfigError(
                f"the image needs {span} tokens after a {longest}-token prompt, more than the context of "
                f"{self.context} positions; request a smaller size (at most {self.context - longest} tokens)"
            )


class StyledBackbone(HFBackbone):
    """A family built as `cls(model, tokenizer, style, name=...)` (Emu3, Janus): its checkpoint
    constructors, written once. Subclasses name the family and its transformers classes."""

    family: ClassVar[str]  # also the default registry name
    model_types: ClassVar[tuple[str, ...]]  # config.model_type values a checkpoint may declare
    #: model_type of the family's original (non-transformers) layout -> what to do with such a checkpoint
    foreign_layouts: ClassVar[dict[str, str]] = {}

    @classmethod
    def transformers_classes(cls) -> tuple[type, type]:
        """(config class, model class), imported on first use."""
        raise NotImplementedError

    @classmethod
    def checkpoint_style(cls, root: Path, style: Any) -> Any:
        """`style` completed with what checkpoint `root` says about itself (default: unchanged)."""
        return style

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        tokenizer: Any = None,
        dtype: str | torch.dtype = AUTO,
        device: str | torch.device = AUTO,
        device_map: Any = None,
        style: Any = None,
        name: str | None = None,
    ):
        """The checkpoint in `path` (a directory), with its noise conditioning if it ships one."""
        root, tokenizer, model = load_pretrained(
            path, family=cls.family, model_types=cls.model_types, model_class=cls.transformers_classes()[1],
            tokenizer=tokenizer, dtype=dtype, device=device, device_map=device_map, foreign=cls.foreign_layouts,
        )
        style = cls.checkpoint_style(root, style)
        return cls(model, tokenizer, style, name=name or cls.family).with_checkpoint_noise(root)

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        tokenizer: Any,
        style: Any = None,
        dtype: str | torch.dtype = AUTO,
        device: str | torch.device = AUTO,
        name: str | None = None,
    ):
        """A randomly initialised model of `config` (tiny models for tests, experiments)."""
        config_class, model_class = cls.transformers_classes()
        tokenizer, model = build_random(
            config, family=cls.family, config_class=config_class, model_class=model_class,
            tokenizer=tokenizer, dtype=dtype, device=device,
        )
        return cls(model, tokenizer, style, name=name or cls.family)


def to_pil(images: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> list[Any]:
    """PIL images from Float[N, H, W] (grey) or Float[N, C, H, W] pixels in `value_range`.

    Anything that is not a tensor (a decoder that already returns PIL images) passes through.
    """
    if not isinstance(images, torch.Tensor):
        return list(images)
    from PIL import Image

    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1).mul(255).round().to(torch.uint8)
    if x.ndim == 4:
        x = x.permute(0, 2, 3, 1)
        if x.shape[-1] == 1:
            x = x[..., 0]
    if x.ndim not in (3, 4):
        raise ConfigError(f"an image decoder must return [N, H, W] or [N, C, H, W] pixels, got {tuple(images.shape)}")
    return [Image.fromarray(a.numpy()) for a in x]
