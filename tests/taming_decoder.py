"""A second, independent implementation of Meta's VQGAN decoder (the taming-transformers design) for
tests: its module names are the ones in `vqgan.ckpt`, so its random state_dict is a file in Meta's
layout, and its output is what pardecode's diffusers-based decoder must reproduce.

Design, from the architecture description: codebook lookup -> 1x1 post-quantisation conv -> conv_in
-> middle (resnet, attention, resnet) -> per resolution stage from the lowest: (num_res_blocks + 1)
resnets (each followed by attention at the configured resolutions), then a nearest 2x upsample and a
3x3 conv except after the last stage -> GroupNorm(32) -> swish -> conv_out. Resnets: GroupNorm,
swish, 3x3 conv, twice, plus a 1x1 conv on the skip path when the width changes. Attention: single
head over all positions, 1x1 convs for q, k, v and the output, scaled by 1/sqrt(channels).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6)


class Res(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class Attn(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        n = self.norm(x)
        q = self.q(n).flatten(2).transpose(1, 2)  # b, hw, c
        k = self.k(n).flatten(2)  # b, c, hw
        v = self.v(n).flatten(2).transpose(1, 2)  # b, hw, c
        weights = torch.softmax(q @ k / c**0.5, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, blocks: int, attention: bool, upsample: bool):
        super().__init__()
        self.block = nn.ModuleList(Res(cin if i == 0 else cout, cout) for i in range(blocks))
        self.attn = nn.ModuleList(Attn(cout) for _ in range(blocks)) if attention else nn.ModuleList()
        if upsample:
            self.upsample = nn.Module()
            self.upsample.conv = nn.Conv2d(cout, cout, 3, padding=1)


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, z_channels, resolution, attn_resolutions, out_ch=3):
        super().__init__()
        levels = len(ch_mult)
        width = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, width, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = Res(width, width), Attn(width), Res(width, width)
        stages = {}
        for level in reversed(range(levels)):  # stored by resolution level, run from the lowest resolution
            out = ch * ch_mult[level]
            stages[level] = Stage(
                width, out, num_res_blocks + 1, resolution // 2**level in attn_resolutions, upsample=level != 0
            )
            width = out
        self.up = nn.ModuleList(stages[level] for level in range(levels))
        self.norm_out = _norm(width)
        self.conv_out = nn.Conv2d(width, out_ch, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for level in reversed(range(len(self.up))):
            stage = self.up[level]
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn):
                    h = stage.attn[i](h)
            if hasattr(stage, "upsample"):
                h = stage.upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class VQGAN(nn.Module):
    """The decoder side of Meta's VQModel, under its checkpoint names."""

    def __init__(self, n_embed, embed_dim, z_channels, **dd):
        super().__init__()
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(n_embed, embed_dim)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.decoder = Decoder(z_channels=z_channels, **dd)

    @torch.no_grad()
    def forward(self, codes):
        z = self.quantize.embedding(codes).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(z))
