"""Meta's VQGAN image decoder, as Chameleon and Lumina-mGPT ship it (`vqgan.yaml` + `vqgan.ckpt`).

transformers ships only the encoder half of Chameleon's VQ model. The decoder half is the
taming-transformers VQGAN decoder, which diffusers maintains under other module names
(`diffusers.models.autoencoders.vae.Decoder`); Meta's weights are renamed into it rather than the
architecture being kept here a second time. diffusers is the optional extra `pardecode[vqgan]`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from ..core.errors import CheckpointError, ConfigError

CONFIG_FILE = "vqgan.yaml"
WEIGHTS_FILE = "vqgan.ckpt"


def is_vqgan_dir(path: Path) -> bool:
    """True when `path` is a directory holding Meta's VQGAN config and weights."""
    return path.is_dir() and (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


@attrs.frozen
class VQGANConfig:
    """The decoder-relevant keys of vqgan.yaml's `model.params` (and its `ddconfig`)."""

    n_embed: int
    embed_dim: int
    z_channels: int
    ch: int
    ch_mult: tuple[int, ...] = attrs.field(converter=tuple)
    num_res_blocks: int
    resolution: int
    out_ch: int = 3
    attn_resolutions: tuple[int, ...] = attrs.field(default=(), converter=lambda v: tuple(v or ()))

    @property
    def downsampling(self) -> int:
        """Pixels per token along each side."""
        return 2 ** (len(self.ch_mult) - 1)

    def attention_levels(self) -> list[bool]:
        """Per decoder stage (lowest resolution first): whether its blocks end in attention."""
        n = len(self.ch_mult)
        return [self.resolution // 2 ** (n - 1 - i) in self.attn_resolutions for i in range(n)]

    @classmethod
    def from_yaml(cls, path: Path) -> VQGANConfig:
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
            params = data["model"]["params"]
            dd = params["ddconfig"]
            attn_type = dd.get("attn_type", "vanilla")
            if attn_type != "vanilla":
                raise CheckpointError(f"{path}: attn_type {attn_type!r} is not supported (only 'vanilla')")
            return cls(
                n_embed=int(params["n_embed"]),
                embed_dim=int(params["embed_dim"]),
                z_channels=int(dd["z_channels"]),
                ch=int(dd["ch"]),
                ch_mult=dd["ch_mult"],
                num_res_blocks=int(dd["num_res_blocks"]),
                resolution=int(dd["resolution"]),
                out_ch=int(dd.get("out_ch", 3)),
                attn_resolutions=dd.get("attn_resolutions"),
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"cannot read a VQGAN config from {path} (model.params with n_embed, embed_dim and a ddconfig): {err!r}"
            ) from None


_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _rename(key: str, levels: int) -> str | None:
    """diffusers' name for one of Meta's decoder-side keys; None for keys the decoder does not use."""
    if key == "quantize.embedding.weight":
        return "codebook.weight"
    if key.startswith("post_quant_conv."):
        return key
    if not key.startswith("decoder."):
        return None  # encoder, quant_conv, loss
    rest = key[len("decoder.") :]
    for meta, ours in (("conv_in.", "conv_in."), ("conv_out.", "conv_out."), ("norm_out.", "conv_norm_out.")):
        if rest.startswith(meta):
            return "decoder." + ours + rest[len(meta) :]
    m = re.fullmatch(r"mid\.(block_1|block_2|attn_1)\.(\w+)\.(weight|bias)", rest)
    if m:
        part, layer, kind = m.groups()
        if part == "attn_1":
            return f"decoder.mid_block.attentions.0.{_ATTENTION[layer]}.{kind}"
        return f"decoder.mid_block.resnets.{0 if part == 'block_1' else 1}.{_RESNET[layer]}.{kind}"
    m = re.fullmatch(r"up\.(\d+)\.(block|attn)\.(\d+)\.(\w+)\.(weight|bias)", rest)
    if m:
        level, part, index, layer, kind = m.groups()
        stage = levels - 1 - int(level)  # Meta indexes stages by resolution, diffusers in running order
        table = _RESNET if part == "block" else _ATTENTION
        return (
            f"decoder.up_blocks.{stage}.{'resnets' if part == 'block' else 'attentions'}.{index}.{table[layer]}.{kind}"
        )
    m = re.fullmatch(r"up\.(\d+)\.upsample\.conv\.(weight|bias)", rest)
    if m:
        return f"decoder.up_blocks.{levels - 1 - int(m.group(1))}.upsamplers.0.conv.{m.group(2)}"
    raise CheckpointError(f"{WEIGHTS_FILE}: unexpected decoder key {key!r}")


class VQGANDecoder(nn.Module):
    """Codebook indices Long[N, rows, cols] -> pixels Float[N, 3, rows*f, cols*f] in [-1, 1]."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        try:
            from diffusers.models.autoencoders.vae import Decoder
        except ImportError:
            raise ConfigError("the VQGAN image decoder needs diffusers: pip install 'pardecode[vqgan]'") from None
        self.config = config
        self.codebook = nn.Embedding(config.n_embed, config.embed_dim)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)
        stages = ["AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in config.attention_levels()]
        self.decoder = Decoder(
            in_channels=config.z_channels,
            out_channels=config.out_ch,
            up_block_types=tuple(stages),
            block_out_channels=tuple(config.ch * m for m in config.ch_mult),
            layers_per_block=config.num_res_blocks,
            norm_num_groups=32,
            act_fn="silu",
        )

    @torch.inference_mode()
    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.ndim != 3:
            raise ConfigError(f"the VQGAN decoder takes Long[N, rows, cols] codebook indices, got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.n_embed):
            raise ConfigError(
                f"codebook indices must be in [0, {self.config.n_embed}), got {int(codes.min())}..{int(codes.max())}"
            )
        weight = self.codebook.weight
        latent = self.codebook(codes.to(weight.device)).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(latent))

    @classmethod
    def load(
        cls, directory: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> VQGANDecoder:
        """Meta's VQGAN in `directory` (vqgan.yaml + vqgan.ckpt)."""
        root = Path(directory).expanduser()
        if not is_vqgan_dir(root):
            raise CheckpointError(f"{str(root)!r} is not a VQGAN directory: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
        config = VQGANConfig.from_yaml(root / CONFIG_FILE)
        state = _read_weights(root / WEIGHTS_FILE)
        levels = len(config.ch_mult)
        renamed: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            new = _rename(key, levels)
            if new is not None:
                attention_linear = re.search(r"attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$", new)
                renamed[new] = value.reshape(value.shape[:2]) if attention_linear else value
        with torch.device("meta"):
            model = cls(config)
        try:
            model.load_state_dict(renamed, strict=True, assign=True)
        except RuntimeError as err:
            reason = " ".join(str(err).split())[:400]
            raise CheckpointError(f"{root / WEIGHTS_FILE} does not match {root / CONFIG_FILE}: {reason}") from None
        return model.to(device=device, dtype=dtype).eval()


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a Lightning-style checkpoint ({"state_dict": {...}}), read without running pickled code."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # an unpickling error names the disallowed global
        reason = " ".join(str(err).split())[:300]
        raise CheckpointError(f"cannot read {path} as tensors only: {reason}") from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state_dict of tensors")
    return state


def to_images(pixels: torch.Tensor) -> list[Any]:
    """PIL images from Float[N, 3, H, W] in [-1, 1], rounded down to 8 bits as Lumina-mGPT's decoder does."""
    from PIL import Image

    x = ((pixels.detach().float().cpu().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).permute(0, 2, 3, 1)
    return [Image.fromarray(a.numpy()).convert("RGB") for a in x]
