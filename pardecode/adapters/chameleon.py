"""Lumina-mGPT-style text-to-image on the Chameleon architecture.

Quirks owned here: the prompt template and separator, the size tokens, the image span
[rows x (cols image tokens + end-of-line), end-of-image] (the start-of-image and size tokens close
the prompt), the unconditional branch that starts at the start-of-image token, and Chameleon's
built-in image-logit mask, which `ChameleonForConditionalGeneration.forward` applies because it was
released as a model that reads images but does not write them: we run `ChameleonModel` + `lm_head`.
Token ids come from `pardecode.json` in the checkpoint directory, else Lumina-mGPT's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch

from ..core.config import SamplingConfig
from ..core.errors import CheckpointError, ConfigError
from ..core.layout import GridLayout
from . import hf

LUMINA_TEMPLATE = "Generate an image of {W}x{H} according to the following prompt:\n{prompt}"
LUMINA_SEPARATOR = "<reserved08706>"
SPEC_FILE = "pardecode.json"

#: decodes Long[N, rows, cols] codebook indices (token id - image_token_range[0]) to images
ImageDecoder = Callable[[torch.Tensor], Any]


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
    family: str = "chameleon"

    def __attrs_post_init__(self):
        if self.family != "chameleon":
            raise CheckpointError(f"{SPEC_FILE}: family must be 'chameleon' for this adapter, got {self.family!r}")
        lo_hi = self.image_token_range
        if not (isinstance(lo_hi, tuple) and len(lo_hi) == 2 and all(isinstance(v, int) for v in lo_hi)
                and 0 <= lo_hi[0] < lo_hi[1]):
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
    def lumina(cls, tokenizer: Any, vocabulary_map: dict[str, int] | None) -> ChameleonSpec:
        """Lumina-mGPT's ids (its public inference code) for a checkpoint without pardecode.json."""
        image = sorted(v for k, v in (vocabulary_map or {}).items() if k.startswith("IMGIMG"))
        bos = tokenizer.bos_token_id
        return cls(
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
            "bos_id": self.bos_id, "separator_id": self.separator_id, "start_of_image_id": self.start_of_image_id,
            "end_of_image_id": self.end_of_image_id, "end_of_line_id": self.end_of_line_id,
            "size_token_base": self.size_token_base, "image_token_range[1] - 1": self.image_token_range[1] - 1,
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


def read_spec(root: Path, tokenizer: Any, vocabulary_map: dict[str, int] | None) -> ChameleonSpec:
    """The checkpoint's pardecode.json, else Lumina-mGPT's defaults."""
    path = root / SPEC_FILE
    if not path.is_file():
        return ChameleonSpec.lumina(tokenizer, vocabulary_map)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return ChameleonSpec.from_dict(data)


class ChameleonBackbone(hf.HFBackbone):
    """A Lumina-mGPT-style generator: Chameleon weights, its tokenizer and a `ChameleonSpec`."""

    start_options = ("size",)

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        spec: ChameleonSpec,
        *,
        image_decoder: ImageDecoder | str | Path | None = None,
        root: Path | None = None,
        name: str = "chameleon",
    ):
        config = model.config
        super().__init__(
            body=model.model,  # ChameleonModel: no image-logit mask, unlike the generation head's forward
            head=model.lm_head,
            tokenizer=tokenizer,
            context=config.max_position_embeddings,
            pad_id=config.pad_token_id if config.pad_token_id is not None else spec.bos_id,
        )
        spec.check_vocab(self.vocab_size)
        spec.grid(spec.default_size)
        self.model, self.name, self.spec, self.root = model.eval(), name, spec, root
        self.default_sampling = SamplingConfig(temperature=1.0, top_k=spec.top_k, cfg_scale=spec.cfg_scale)
        self.image_tokens = torch.arange(*spec.image_token_range)
        lo, hi = spec.image_token_range
        self._reserved = set(range(lo, hi)) | {
            spec.bos_id, spec.separator_id, spec.start_of_image_id, spec.end_of_image_id, spec.end_of_line_id
        }
        self._decoder_source = image_decoder
        self._decoder: ImageDecoder | None = None
        self.no_images_reason: str | None = None
        if image_decoder is None and spec.image_decoder is None:
            self.no_images_reason = (
                f"backbone {name!r} has no image decoder: transformers ships Chameleon's VQ encoder only. "
                "Pass image_decoder=<callable taking Long[N, rows, cols] codebook indices> to decode images."
            )
        elif image_decoder is not None and not isinstance(image_decoder, (str, Path)) and not callable(image_decoder):
            raise ConfigError(f"image_decoder must be a callable or a file path, got {type(image_decoder).__name__}")

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        tokenizer: Any = None,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        image_decoder: ImageDecoder | str | Path | None = None,
        name: str = "chameleon",
    ) -> ChameleonBackbone:
        from transformers import ChameleonForConditionalGeneration

        root, tokenizer, model = hf.load_pretrained(
            path, family="chameleon", model_types=("chameleon",), model_class=ChameleonForConditionalGeneration,
            tokenizer=tokenizer, dtype=dtype, device=device,
        )
        spec = read_spec(root, tokenizer, model.config.vocabulary_map)
        backbone = cls(model, tokenizer, spec, image_decoder=image_decoder, root=root, name=name)
        return backbone.with_checkpoint_noise(root)

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        tokenizer: Any,
        spec: ChameleonSpec | dict[str, Any] | None = None,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        image_decoder: ImageDecoder | None = None,
        name: str = "chameleon",
    ) -> ChameleonBackbone:
        """A randomly initialised model of `config` (tiny models for tests, experiments)."""
        from transformers import ChameleonConfig, ChameleonForConditionalGeneration

        tokenizer, model = hf.build_random(
            config, family="chameleon", config_class=ChameleonConfig, model_class=ChameleonForConditionalGeneration,
            tokenizer=tokenizer, dtype=dtype, device=device,
        )
        if spec is None:
            spec = ChameleonSpec.lumina(tokenizer, config.vocabulary_map)
        elif isinstance(spec, dict):
            spec = ChameleonSpec.from_dict(spec)
        return cls(model, tokenizer, spec, image_decoder=image_decoder, name=name)

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
        uncond = [[spec.bos_id, *image_head] for _ in prompts] if sampling.uses_cfg else None
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
            if source is None and self.spec.image_decoder is not None:
                source = (self.root or Path(".")) / self.spec.image_decoder
            if isinstance(source, (str, Path)):
                source = _load_patch_decoder(Path(source))
            self._decoder = source
        return self._decoder

    def image_codebook(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The patch codebook of the project's decoder when it is one (the default model), else the VQ
        encoder's codebook (token id - image_token_range[0] indexes both); computed once."""
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
        codes = session.layout.grid(tokens.cpu()) - self.spec.image_token_range[0]
        return hf.to_pil(decoder(codes))


def _load_patch_decoder(path: Path) -> ImageDecoder:
    """The project's patch tokenizer (pardecode.fashion.tokenizer) stored at `path`, as a decoder."""
    if not path.is_file():
        raise CheckpointError(f"image decoder file {str(path)!r} does not exist")
    from ..fashion.tokenizer import PatchTokenizer  # imported lazily: only the default model needs it

    tokenizer = PatchTokenizer.load(path)
    return tokenizer.decode
