"""Built-in backbones, registered through the same hook third-party plugins implement.

Factories import their family module (and transformers' model code) only when called, so building
the plugin registry stays cheap. (They are named load_* because the family submodules `chameleon`,
`emu3` and `janus` become attributes of this package once imported.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.options import options_of
from ..core.plugins import hookimpl

#: names that moved to the default model's own plugin (`pardecode.fashion.plugin`), still importable from here
_MOVED_TO_FASHION = ("FASHION_DIR", "FASHION_SJD2_DIR", "load_fashion", "load_fashion_sjd2")


def __getattr__(name: str) -> Any:
    """The moved names, looked up where they live now: no adapter depends on the default model."""
    if name in _MOVED_TO_FASHION:
        import importlib

        return getattr(importlib.import_module("pardecode.fashion.plugin"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _source(family: str, path: Any, config: Any) -> None:
    if (path is None) == (config is None):
        raise ConfigError(
            f"backbone {family!r} needs exactly one of path= (a checkpoint directory) or config= "
            f"(a transformers config for a randomly initialised model), got path={path!r}, "
            f"config={type(config).__name__ if config is not None else None}"
        )


def _load_styled(
    family: str,
    backbone_class: Any,
    style_class: Any,
    path: str | Path | None,
    config: Any,
    tokenizer: Any,
    dtype: str,
    device: str,
    device_map: Any,
    style: dict[str, Any],
    static: bool = False,
):
    """A backbone of a family dressed by a style (Emu3, Janus): `backbone_class` loaded from the checkpoint
    `path`, or a random model of `config`, with `style_class(**style)`."""
    _source(family, path, config)
    known = [o.name for o in options_of(style_class)[0]]
    unknown = [k for k in style if k not in known]
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for backbone {family!r}; its options: path, "
            f"config, tokenizer, dtype, device, device_map, static, and the style options {', '.join(known)}"
        )
    settings = style_class(**style)
    if path is not None:
        return backbone_class.from_pretrained(
            path, tokenizer=tokenizer, dtype=dtype, device=device, device_map=device_map, style=settings, static=static
        )
    return backbone_class.from_config(
        config, tokenizer=tokenizer, style=settings, dtype=dtype, device=device, static=static
    )


def load_chameleon(
    path: str | Path | None = None,
    *,
    config: Any = None,
    tokenizer: Any = None,
    spec: Any = None,
    dtype: str = "auto",
    device: str = "auto",
    device_map: Any = None,
    image_decoder: Any = None,
    vqgan: str | Path | None = None,
    target_size: Any = None,
    guidance_row: str = "official",
    static: bool = False,
):
    """Lumina-mGPT-style backbone from a checkpoint directory, or a random model from a ChameleonConfig.

    `tokenizer` (a directory or tokenizer object) overrides the checkpoint's own, e.g. when a checkpoint
    ships its tokenizer in a non-transformers format. `vqgan` is a directory with Meta's vqgan.yaml and
    vqgan.ckpt (found in or beside the checkpoint when not given); `target_size` the resolution the
    checkpoint was trained for when its name does not say. `dtype`/`device` "auto": bfloat16 on CUDA
    when there is one, else the checkpoint's dtype on the CPU; `device_map` places a model too large
    for one device (accelerate). `guidance_row`: "official" (Lumina-mGPT's solver) or "sjd" (the SJD
    authors' code; docs/checkpoints.md). `static`: the static pass (fixed shapes after the prompt, for
    `--compile`; `pardecode.adapters.hf_static`).
    """
    from .chameleon import ChameleonBackbone

    _source("chameleon", path, config)
    if vqgan is not None and image_decoder is not None:
        raise ConfigError("give one of vqgan= (a VQGAN directory) or image_decoder=, not both")
    image_decoder = vqgan if vqgan is not None else image_decoder
    if path is not None:
        return ChameleonBackbone.from_pretrained(
            path,
            tokenizer=tokenizer,
            dtype=dtype,
            device=device,
            device_map=device_map,
            image_decoder=image_decoder,
            target_size=target_size,
            guidance_row=guidance_row,
            static=static,
        )
    return ChameleonBackbone.from_config(
        config,
        tokenizer=tokenizer,
        spec=spec,
        dtype=dtype,
        device=device,
        image_decoder=image_decoder,
        guidance_row=guidance_row,
        static=static,
    )


def load_emu3(
    path: str | Path | None = None,
    *,
    config: Any = None,
    tokenizer: Any = None,
    dtype: str = "auto",
    device: str = "auto",
    device_map: Any = None,
    static: bool = False,
    **style: Any,
):
    """Emu3 backbone from a checkpoint directory, or a random model from an Emu3Config.

    `style` overrides the reference prompt dressing (prompt_suffix, negative_prompt, image_area,
    default_size, cfg_scale, top_k). dtype, device, device_map and static as for chameleon.
    """
    from .emu3 import Emu3Backbone, Emu3Style

    return _load_styled(
        "emu3", Emu3Backbone, Emu3Style, path, config, tokenizer, dtype, device, device_map, style, static
    )


def load_janus(
    path: str | Path | None = None,
    *,
    config: Any = None,
    tokenizer: Any = None,
    dtype: str = "auto",
    device: str = "auto",
    device_map: Any = None,
    static: bool = False,
    **style: Any,
):
    """Janus / Janus-Pro backbone from a checkpoint directory, or a random model from a JanusConfig.

    `style` overrides the reference variant ("janus-pro" or "janus-1.3b", read from the checkpoint's
    name by default), prompt_template, cfg_scale and top_k. dtype, device, device_map and static as for
    chameleon.
    """
    from .janus import JanusBackbone, JanusStyle

    return _load_styled(
        "janus", JanusBackbone, JanusStyle, path, config, tokenizer, dtype, device, device_map, style, static
    )


@hookimpl
def pardecode_register_backbones(register):
    register("chameleon", load_chameleon, "Lumina-mGPT-style text-to-image on Chameleon weights (transformers)")
    register("emu3", load_emu3, "Emu3 text-to-image with its VQ decoder (transformers)")
    register("janus", load_janus, "Janus / Janus-Pro text-to-image with its VQ decoder (transformers)")
