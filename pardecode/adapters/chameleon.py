"""Lumina-mGPT-style text-to-image on the Chameleon architecture.

Quirks owned here: the prompt template and separator, the size tokens, the image span
[rows x (cols image tokens + end-of-line), end-of-image] (the start-of-image and size tokens close
the prompt), the unconditional branch that starts at the start-of-image token, and Chameleon's
built-in image-logit mask, which `ChameleonForConditionalGeneration.forward` applies because it was
released as a model that reads images but does not write them: we run `ChameleonModel` + `lm_head`.
Token ids come from `pardecode.json` in the checkpoint directory, else Lumina-mGPT's.

Lumina-mGPT checkpoints as published (`ChameleonXLLMXForConditionalGeneration`) store each layer's
q_norm/k_norm once per model-parallel shard, [model_parallel_size, head_dim], and repeat them over
the shard's heads at run time; transformers wants one row per head, so the rows are repeated on load
(`lumina_norms`). They are trained for one resolution, which their name states (…-7B-768), and
decode through Meta's VQGAN (`pardecode.adapters.vqgan`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import attrs
import torch

from ..core.config import SamplingConfig
from ..core.errors import CheckpointError, ConfigError
from ..core.layout import GridLayout
from . import hf

LUMINA_TEMPLATE = "Generate an image of {W}x{H} according to the following prompt:\n{prompt}"
LUMINA_SEPARATOR = "<reserved08706>"
SPEC_FILE = "pardecode.json"
#: the resolutions Lumina-mGPT checkpoints are published for, as their names spell them (…-7B-768)
LUMINA_SIZE_IN_NAME = re.compile(r"lumina.*?-(\d{3,4})(?![\dB])", re.IGNORECASE)
#: where a VQGAN directory (vqgan.yaml + vqgan.ckpt) is looked for around a checkpoint
VQGAN_PLACES = (".", "vqgan", "tokenizer")
#: how the CFG branch's row is built: "official" as Lumina-mGPT's solver ([soi, h, w], or [bos, soi, h, w]
#: when the spec says guidance_bos); "sjd" as the SJD authors' code (tyshiwo1/Accelerating-T2I-AR-with-SJD):
#: the whole prompt masked but its last token, the separator, so the branch sees [separator, soi, h, w]
GUIDANCE_ROWS = ("official", "sjd")

#: decodes Long[N, rows, cols] codebook indices (token id - image_token_range[0]) to images
ImageDecoder = Callable[[torch.Tensor], Any]


@attrs.frozen
class DecoderFile:
    """An image decoder stored as one file in a format of a backbone's own (a subclass's), besides
    Meta's VQGAN: the file suffix that marks it, what it is called in errors, and how to read it."""

    suffix: str
    kind: str
    read: Callable[[Path], ImageDecoder]


def _nonneg_int(inst, attribute, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{SPEC_FILE}: {attribute.name} must be an integer >= 0, got {value!r}")


def _pos_int(inst, attribute, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{SPEC_FILE}: {attribute.name} must be an integer >= 1, got {value!r}")


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@attrs.frozen
class ChameleonSpec:
    """Token ids and reference settings of a Lumina-mGPT-style checkpoint (the keys of pardecode.json)."""

    bos_id: int = attrs.field(validator=_nonneg_int)
    separator_id: int = attrs.field(validator=_nonneg_int)
    start_of_image_id: int = attrs.field(validator=_nonneg_int)
    end_of_image_id: int = attrs.field(validator=_nonneg_int)
    end_of_line_id: int = attrs.field(validator=_nonneg_int)
    size_token_base: int = attrs.field(validator=_nonneg_int)
    image_token_range: tuple[int, int] = attrs.field(converter=_pair)
    tokens_per_grid_unit: int = attrs.field(default=2, validator=_pos_int)
    pixels_per_token: int = attrs.field(default=16, validator=_pos_int)
    prompt_template: str = LUMINA_TEMPLATE
    default_size: tuple[int, int] = attrs.field(default=(768, 768), converter=_pair)
    cfg_scale: float = 3.0
    top_k: int = 2000
    image_decoder: str | None = None
    #: the unconditional row starts with bos (True), or at the start-of-image token as Lumina-mGPT's
    #: reference solver builds it: [start-of-image, size_h, size_w]
    guidance_bos: bool = True
    family: str = "chameleon"

    def __attrs_post_init__(self):
        if not isinstance(self.guidance_bos, bool):
            raise ConfigError(f"{SPEC_FILE}: guidance_bos must be true or false, got {self.guidance_bos!r}")
        if self.family != "chameleon":
            raise CheckpointError(f"{SPEC_FILE}: family must be 'chameleon' for this adapter, got {self.family!r}")
        lo_hi = self.image_token_range
        if not (
            isinstance(lo_hi, tuple)
            and len(lo_hi) == 2
            and all(isinstance(v, int) for v in lo_hi)
            and 0 <= lo_hi[0] < lo_hi[1]
        ):
            raise ConfigError(f"{SPEC_FILE}: image_token_range must be [lo, hi] with 0 <= lo < hi, got {lo_hi!r}")
        size = self.default_size
        if not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ConfigError(f"{SPEC_FILE}: default_size must be [W, H] in pixels, got {size!r}")
        if not isinstance(self.prompt_template, str) or "{prompt}" not in self.prompt_template:
            raise ConfigError(f"{SPEC_FILE}: prompt_template must contain '{{prompt}}', got {self.prompt_template!r}")
        try:
            self.prompt(1, 1, "")
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(
                f"{SPEC_FILE}: prompt_template may use only {{prompt}}, {{W}}/{{width}} and {{H}}/{{height}}, "
                f"got {self.prompt_template!r} ({err!r})"
            ) from None
        SamplingConfig(top_k=self.top_k, cfg_scale=self.cfg_scale)  # validates both

    def prompt(self, width: int, height: int, prompt: str) -> str:
        """The templated text; the size may be spelled {W}x{H} or {width}x{height}."""
        return self.prompt_template.format(W=width, H=height, width=width, height=height, prompt=prompt)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChameleonSpec:
        """The spec from pardecode.json's keys; other keys (metadata) are ignored."""
        known = {a.name for a in attrs.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:  # a required key is missing
            raise ConfigError(f"{SPEC_FILE}: {err}; keys allowed: {sorted(known)}") from None

    @classmethod
    def lumina(
        cls, tokenizer: Any, vocabulary_map: dict[str, int] | None, size: tuple[int, int] = (768, 768)
    ) -> ChameleonSpec:
        """Lumina-mGPT's ids and settings (its public inference code) for a checkpoint without
        pardecode.json, generating `size` = (W, H) images by default."""
        image = sorted(v for k, v in (vocabulary_map or {}).items() if k.startswith("IMGIMG"))
        bos = tokenizer.bos_token_id
        return cls(
            default_size=size,
            guidance_bos=False,
            bos_id=0 if bos is None else int(bos),
            separator_id=hf.token_id(tokenizer, LUMINA_SEPARATOR),
            start_of_image_id=8197,
            end_of_image_id=8196,
            end_of_line_id=8803,
            size_token_base=8804,
            image_token_range=(image[0], image[-1] + 1) if image else (4, 8196),
        )

    def check_vocab(self, vocab_size: int) -> None:
        ids = {
            "bos_id": self.bos_id,
            "separator_id": self.separator_id,
            "start_of_image_id": self.start_of_image_id,
            "end_of_image_id": self.end_of_image_id,
            "end_of_line_id": self.end_of_line_id,
            "size_token_base": self.size_token_base,
            "image_token_range[1] - 1": self.image_token_range[1] - 1,
        }
        bad = {k: v for k, v in ids.items() if v >= vocab_size}
        if bad:
            raise CheckpointError(f"{SPEC_FILE}: ids {bad} outside the model's vocabulary of {vocab_size}")

    def grid(self, size: Any) -> tuple[int, int]:
        """(rows, cols) of image tokens for `size` = (W, H) pixels; a ConfigError if not producible."""
        unit = self.pixels_per_token * self.tokens_per_grid_unit
        hf.check_pixel_size(size)
        if size[0] % unit or size[1] % unit:
            raise ConfigError(
                f"size {size[0]}x{size[1]} is not producible: width and height must be multiples of "
                f"{unit} px ({self.tokens_per_grid_unit} tokens of {self.pixels_per_token} px)"
            )
        return size[1] // self.pixels_per_token, size[0] // self.pixels_per_token


def lumina_size(root: Path) -> int | None:
    """The resolution a Lumina-mGPT checkpoint's name states (Lumina-mGPT-7B-512 -> 512), if any.

    The hub cache keeps the name in a parent directory (models--Alpha-VLLM--Lumina-mGPT-7B-768/...).
    """
    for part in reversed(root.resolve().parts):
        m = LUMINA_SIZE_IN_NAME.search(part)
        if m:
            return int(m.group(1))
    return None


def _target_size(value: Any) -> tuple[int, int]:
    side = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (
        isinstance(side, (tuple, list))
        and len(side) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in side)
    ):
        raise ConfigError(f"target_size must be the checkpoint's resolution in pixels (512, 768, 1024), got {value!r}")
    return tuple(side)


def read_spec(
    root: Path, tokenizer: Any, vocabulary_map: dict[str, int] | None, target_size: Any = None
) -> ChameleonSpec:
    """The checkpoint's pardecode.json, else Lumina-mGPT's defaults at the checkpoint's resolution:
    `target_size` if given, else the one its name states."""
    path = root / SPEC_FILE
    if not path.is_file():
        if target_size is None:
            side = lumina_size(root)
            if side is None:
                raise CheckpointError(
                    f"{str(root)!r} does not state the resolution it was trained for (neither a {SPEC_FILE} nor a "
                    "name like Lumina-mGPT-7B-768); pass target_size=512, 768 or 1024 to match the checkpoint"
                )
            target_size = side
        return ChameleonSpec.lumina(tokenizer, vocabulary_map, _target_size(target_size))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    spec = ChameleonSpec.from_dict(data)
    return spec if target_size is None else attrs.evolve(spec, default_size=_target_size(target_size))


def _weight_files(root: Path) -> list[Path]:
    """The safetensors files of checkpoint `root` (one file, or the shards its index names)."""
    index = root / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as err:
            raise CheckpointError(f"cannot read {index}: {err!r}") from None
        return [root / n for n in names]
    single = root / "model.safetensors"
    return [single] if single.is_file() else []


_NORM_KEY = re.compile(r"model\.layers\.\d+\.self_attn\.(q|k)_norm\.(weight|bias)")


def lumina_norms(root: Path, config: dict[str, Any]) -> dict[str, tuple[Path, int]]:
    """The per-shard q_norm/k_norm tensors of a Lumina-mGPT-layout checkpoint: key -> (file, heads).

    Empty for a transformers-layout checkpoint (one row per head already). A shape that is neither
    is a CheckpointError.
    """
    files = _weight_files(root)
    if not files:
        if "ChameleonXLLMXForConditionalGeneration" in (config.get("architectures") or []):
            raise CheckpointError(
                f"{str(root)!r} is a Lumina-mGPT checkpoint without safetensors weights; pardecode reads "
                "Lumina-mGPT's published safetensors layout only"
            )
        return {}
    heads = {
        "q": config.get("num_attention_heads"),
        "k": config.get("num_key_value_heads") or config.get("num_attention_heads"),
    }
    out: dict[str, tuple[Path, int]] = {}
    for file in files:
        with hf.safetensors_file(file) as f:
            for key in f.keys():
                m = _NORM_KEY.fullmatch(key)
                if not m:
                    continue
                rows, want = f.get_slice(key).get_shape()[0], heads[m.group(1)]
                if rows == want:
                    continue
                if not isinstance(want, int) or rows < 1 or want % rows:
                    raise CheckpointError(
                        f"{file.name}: {key} has {rows} rows, which cannot be spread over {want} attention heads"
                    )
                out[key] = (file, want)
    return out


@torch.no_grad()
def expand_norms(model: Any, norms: dict[str, tuple[Path, int]]) -> None:
    """Copy each per-shard norm row over its shard's heads (Lumina-mGPT's run-time repeat_interleave)."""
    for key, (file, heads) in norms.items():
        with hf.safetensors_file(file) as f:
            stored = f.get_tensor(key)
        try:
            param = model.get_parameter(key)
        except AttributeError:
            raise CheckpointError(f"{file.name}: {key} has no counterpart in transformers' Chameleon") from None
        param.copy_(stored.repeat_interleave(heads // stored.shape[0], dim=0).to(param.device, param.dtype))


class ChameleonBackbone(hf.HFBackbone):
    """A Lumina-mGPT-style generator: Chameleon weights, its tokenizer and a `ChameleonSpec`."""

    start_options = ("size",)
    #: the one-file image decoder format this backbone reads besides Meta's VQGAN (None: VQGAN only)
    decoder_file: ClassVar[DecoderFile | None] = None

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        spec: ChameleonSpec,
        *,
        image_decoder: ImageDecoder | str | Path | None = None,
        root: Path | None = None,
        name: str = "chameleon",
        guidance_row: str = "official",
        static: bool = False,
    ):
        if guidance_row not in GUIDANCE_ROWS:
            raise ConfigError(f"guidance_row must be one of {list(GUIDANCE_ROWS)}, got {guidance_row!r}")
        config = model.config
        super().__init__(
            body=model.model,  # ChameleonModel: no image-logit mask, unlike the generation head's forward
            head=model.lm_head,
            tokenizer=tokenizer,
            context=config.max_position_embeddings,
            pad_id=config.pad_token_id if config.pad_token_id is not None else spec.bos_id,
            static=static,
        )
        spec.check_vocab(self.vocab_size)
        spec.grid(spec.default_size)
        self.model, self.name, self.spec, self.root = model.eval(), name, spec, root
        self.guidance_row = guidance_row
        self.default_sampling = SamplingConfig(temperature=1.0, top_k=spec.top_k, cfg_scale=spec.cfg_scale)
        self.image_tokens = torch.arange(*spec.image_token_range)
        lo, hi = spec.image_token_range
        self._reserved = set(range(lo, hi)) | {
            spec.bos_id,
            spec.separator_id,
            spec.start_of_image_id,
            spec.end_of_image_id,
            spec.end_of_line_id,
        }
        names = config.vocabulary_map or (tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else None)
        self._codebook_index = _codebook_index(names, self.vocab_size)
        if image_decoder is None and spec.image_decoder is not None:
            image_decoder = (root or Path(".")) / spec.image_decoder
        if image_decoder is None and root is not None:
            image_decoder = find_vqgan(root)
        if image_decoder is not None and not isinstance(image_decoder, (str, Path)) and not callable(image_decoder):
            raise ConfigError(f"image_decoder must be a callable or a path, got {type(image_decoder).__name__}")
        self._decoder_source = image_decoder
        self._decoder: ImageDecoder | None = None
        self.no_images_reason: str | None = None
        if image_decoder is None:
            self.no_images_reason = (
                f"backbone {name!r} has no image decoder: transformers ships Chameleon's VQ encoder only. "
                "Pass vqgan=<directory with Meta's vqgan.yaml and vqgan.ckpt> (Lumina-mGPT's "
                "ckpts/chameleon/tokenizer) or image_decoder=<callable taking Long[N, rows, cols] codebook indices>."
            )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        tokenizer: Any = None,
        dtype: str | torch.dtype = hf.AUTO,
        device: str | torch.device = hf.AUTO,
        device_map: Any = None,
        image_decoder: ImageDecoder | str | Path | None = None,
        target_size: Any = None,
        name: str = "chameleon",
        guidance_row: str = "official",
        static: bool = False,
    ) -> ChameleonBackbone:
        """The checkpoint in directory `path`: transformers' layout or Lumina-mGPT's as published.

        `image_decoder` is a callable, a VQGAN directory or a file of `decoder_file`'s format; without one, a VQGAN
        directory in or beside the checkpoint is used (`VQGAN_PLACES`). `target_size` is the resolution
        the checkpoint was trained for, when neither pardecode.json nor its name states it. `guidance_row`
        is one of GUIDANCE_ROWS; `static` runs the static pass (`HFBackbone`).
        """
        from transformers import ChameleonForConditionalGeneration

        root = hf.checkpoint_dir(path, ("chameleon",), "chameleon")
        norms = lumina_norms(root, hf.read_config(root))
        root, tokenizer, model = hf.load_pretrained(
            root,
            family="chameleon",
            model_types=("chameleon",),
            model_class=ChameleonForConditionalGeneration,
            tokenizer=tokenizer,
            dtype=dtype,
            device=device,
            device_map=device_map,
            reshaped=norms,
        )
        expand_norms(model, norms)
        spec = read_spec(root, tokenizer, model.config.vocabulary_map, target_size)
        backbone = cls(
            model,
            tokenizer,
            spec,
            image_decoder=image_decoder,
            root=root,
            name=name,
            guidance_row=guidance_row,
            static=static,
        )
        return backbone.with_checkpoint_noise(root)

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        tokenizer: Any,
        spec: ChameleonSpec | dict[str, Any] | None = None,
        dtype: str | torch.dtype = hf.AUTO,
        device: str | torch.device = hf.AUTO,
        image_decoder: ImageDecoder | None = None,
        name: str = "chameleon",
        guidance_row: str = "official",
        static: bool = False,
    ) -> ChameleonBackbone:
        """A randomly initialised model of `config` (tiny models for tests, experiments); `static`
        runs the static pass (`HFBackbone`)."""
        from transformers import ChameleonConfig, ChameleonForConditionalGeneration

        tokenizer, model = hf.build_random(
            config,
            family="chameleon",
            config_class=ChameleonConfig,
            model_class=ChameleonForConditionalGeneration,
            tokenizer=tokenizer,
            dtype=dtype,
            device=device,
        )
        if spec is None:
            spec = ChameleonSpec.lumina(tokenizer, config.vocabulary_map)
        elif isinstance(spec, dict):
            spec = ChameleonSpec.from_dict(spec)
        return cls(
            model, tokenizer, spec, image_decoder=image_decoder, name=name, guidance_row=guidance_row, static=static
        )

    def size_tokens(self, rows: int, cols: int) -> list[int]:
        base, unit = self.spec.size_token_base, self.spec.tokens_per_grid_unit
        ids = [base + rows // unit, base + cols // unit]
        if max(ids) >= self.vocab_size:
            raise ConfigError(
                f"a {rows}x{cols}-token image needs size token {max(ids)}, outside the vocabulary of "
                f"{self.vocab_size}; request a smaller size"
            )
        clash = [i for i in ids if i in self._reserved]
        if clash:
            raise ConfigError(
                f"a {rows}x{cols}-token image needs size token {clash[0]}, which is not a size token (it is an "
                f"image or layout token of this model); request a smaller size"
            )
        return ids

    def encode(self, prompts: list[str], sampling: SamplingConfig, size: Any = None) -> hf.Encoded:
        spec = self.spec
        size = spec.default_size if size is None else size
        rows, cols = spec.grid(size)
        width, height = size
        image_head = [spec.start_of_image_id, *self.size_tokens(rows, cols)]
        texts = [spec.prompt(width, height, p) for p in prompts]
        cond = [[spec.bos_id, *ids, spec.separator_id, *image_head] for ids in hf.tokenize(self.tokenizer, texts)]
        if self.guidance_row == "sjd":  # the masked prompt's tokens are invisible and take no position
            guidance = [spec.separator_id, *image_head]
        else:
            guidance = [spec.bos_id, *image_head] if spec.guidance_bos else image_head
        uncond = [list(guidance) for _ in prompts] if sampling.uses_cfg else None
        layout = GridLayout(
            rows=rows,
            cols=cols,
            image_tokens=self.image_tokens,
            end_of_line=spec.end_of_line_id,
            end_tokens=(spec.end_of_image_id,),
            vocab_size=self.vocab_size,
        )
        return hf.Encoded(cond=cond, uncond=uncond, layout=layout)

    def image_decoder(self) -> ImageDecoder | None:
        """The decoder from codebook indices to images, loaded on first use."""
        if self._decoder is None:
            source = self._decoder_source
            if isinstance(source, (str, Path)):
                source = _load_decoder(Path(source), self.device, self.decoder_file)
            scale = getattr(getattr(source, "config", None), "downsampling", None)
            if scale is not None and scale != self.spec.pixels_per_token:
                raise CheckpointError(
                    f"the VQGAN at {str(self._decoder_source)!r} draws {scale} px per token, but this checkpoint's "
                    f"images have {self.spec.pixels_per_token} px per token"
                )
            self._decoder = source
        return self._decoder

    def image_codebook(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The codebook of a decoder that carries one (a bound method of an object with a `codebook`
        table), else the VQ encoder's codebook (token id - image_token_range[0] indexes both); computed once."""
        if not hasattr(self, "_codebook"):
            decoder = self.image_decoder() if self.no_images_reason is None else None
            owner = getattr(decoder, "__self__", None)
            table = getattr(owner, "codebook", None)
            if table is None:
                quantize = getattr(getattr(getattr(self.model, "model", None), "vqmodel", None), "quantize", None)
                table = None if quantize is None else quantize.embedding.weight
            n = len(self.image_tokens)
            ok = table is not None and len(table) >= n
            self._codebook = (self.image_tokens.clone(), table[:n].detach().float().cpu().clone()) if ok else None
        return self._codebook

    def images(self, tokens: torch.Tensor, session: hf.HFSession) -> list[Any] | None:
        decoder = self.image_decoder() if self.no_images_reason is None else None
        if decoder is None:
            return None
        grid = session.layout.grid(tokens.cpu())
        from .vqgan import VQGANDecoder, to_images

        if isinstance(decoder, VQGANDecoder):  # Meta's codebook order, spelled by the image tokens' names
            if self._codebook_index is None:
                raise CheckpointError("the config's vocabulary_map names no IMGIMG image tokens for the VQGAN codebook")
            return to_images(decoder(self._codebook_index[grid]))
        return hf.to_pil(decoder(grid - self.spec.image_token_range[0]))


def _codebook_index(vocabulary_map: dict[str, int] | None, vocab_size: int) -> torch.Tensor | None:
    """Long[vocab]: the VQGAN codebook index of each image token, read from its name (IMGIMG + one
    letter A-J per digit + Z, Meta's spelling); -1 elsewhere. None without such names."""
    table = torch.full((vocab_size,), -1, dtype=torch.long)
    found = False
    for name, tid in (vocabulary_map or {}).items():
        m = re.fullmatch(r"IMGIMG([A-J]+)Z", name)
        if m and 0 <= tid < vocab_size:
            table[tid] = int("".join(str(ord(c) - ord("A")) for c in m.group(1)))
            found = True
    return table if found else None


def find_vqgan(root: Path) -> Path | None:
    """A VQGAN directory in or beside checkpoint `root` (see VQGAN_PLACES), if there is one."""
    from .vqgan import is_vqgan_dir

    for place in VQGAN_PLACES:
        if is_vqgan_dir(root / place):
            return root / place
    return None


def _load_decoder(path: Path, device: torch.device, decoder_file: DecoderFile | None = None) -> ImageDecoder:
    """The image decoder stored at `path`: Meta's VQGAN (a directory with vqgan.yaml and vqgan.ckpt, or
    either file), or a file in the backbone's own `decoder_file` format."""
    from .vqgan import CONFIG_FILE, WEIGHTS_FILE, VQGANDecoder, is_vqgan_dir

    if path.name in (CONFIG_FILE, WEIGHTS_FILE):
        path = path.parent
    if is_vqgan_dir(path):
        return VQGANDecoder.load(path, device=device)
    if decoder_file is not None and path.is_file() and path.suffix == decoder_file.suffix:
        return decoder_file.read(path)
    if not path.exists():
        raise CheckpointError(f"image decoder {str(path)!r} does not exist")
    own = decoder_file
    other = "a callable taking codebook indices" if own is None else f"a {own.kind} ({own.suffix})"
    raise CheckpointError(
        f"image decoder {str(path)!r} is neither a VQGAN directory ({CONFIG_FILE} + {WEIGHTS_FILE}) nor {other}"
    )
