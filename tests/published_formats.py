"""Tiny random checkpoints in the on-disk layouts the real ones are published in.

- Lumina-mGPT (Alpha-VLLM/Lumina-mGPT-7B-*): a Chameleon config naming
  `ChameleonXLLMXForConditionalGeneration`, q_norm/k_norm stored per model-parallel shard
  ([model_parallel_size, head_dim]), Lumina-mGPT's token ids (image tokens 4..8195 named IMGIMG...,
  end-of-image 8196, start-of-image 8197, end-of-line 8803, size tokens 8804+n, separator
  <reserved08706>), no pardecode.json, and Meta's VQGAN (vqgan.yaml + vqgan.ckpt).
- Emu3 original (BAAI/Emu3-Gen): config model_type "Emu3" (remote code).
- Janus original (deepseek-ai/Janus*): config model_type "multi_modality" (remote code).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import taming_decoder
import tiny_models
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models
from transformers import ChameleonForConditionalGeneration, PreTrainedTokenizerFast

LUMINA_IMAGE_LO, LUMINA_CODEBOOK = 4, 8192
LUMINA_EOI, LUMINA_SOI, LUMINA_EOL, LUMINA_SIZE_BASE = 8196, 8197, 8803, 8804
LUMINA_SEPARATOR_ID = 8706 + 4  # <reserved08706>: reserved names are offset by the 4 leading specials
LUMINA_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
LUMINA_RESERVED_END = LUMINA_SIZE_BASE + 32  # size tokens for up to 32 grid units
HEADS, SHARDS = 4, 2  # 4 heads over 2 model-parallel shards: each stored norm row covers 2 heads

#: Meta's VQGAN at tiny widths: 16 px per token like the real one (5 stages), attention at 16 px
VQGAN = dict(
    n_embed=LUMINA_CODEBOOK,
    embed_dim=4,
    z_channels=4,
    dd=dict(ch=32, ch_mult=[1, 1, 1, 1, 1], num_res_blocks=1, resolution=128, attn_resolutions=[16]),
)


def lumina_vocabulary() -> dict[str, int]:
    vocab = {name: i for i, name in enumerate(LUMINA_SPECIALS)}
    for i in range(LUMINA_CODEBOOK):
        vocab[tiny_models._imgimg_name(i)] = LUMINA_IMAGE_LO + i
    for tid in range(LUMINA_IMAGE_LO + LUMINA_CODEBOOK, LUMINA_RESERVED_END):
        vocab[f"<reserved{tid - 4:05d}>"] = tid
    for ch in tiny_models.TEXT_CHARS:
        vocab.setdefault(ch, len(vocab))
    return vocab


def lumina_model(seed: int = 0) -> ChameleonForConditionalGeneration:
    """A tiny Chameleon whose q/k norm rows repeat per shard (what the published layout can express)."""
    vocab = lumina_vocabulary()
    config = tiny_models.chameleon_config(
        vocab_size=len(vocab),
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        vocabulary_map=vocab,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ChameleonForConditionalGeneration(config).eval()
        with torch.no_grad():
            for layer in model.model.layers:
                for norm in (layer.self_attn.q_norm, layer.self_attn.k_norm):
                    for p in (norm.weight, norm.bias):
                        shard_rows = torch.randn(SHARDS, p.shape[1]) * 0.5 + (1.0 if p is norm.weight else 0.0)
                        p.copy_(shard_rows.repeat_interleave(HEADS // SHARDS, dim=0))
    return model


def save_lumina_tokenizer(path: Path) -> None:
    tok = Tokenizer(models.BPE(vocab=lumina_vocabulary(), merges=[], unk_token="<unk>"))
    tok.add_special_tokens(LUMINA_SPECIALS)
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    ).save_pretrained(path)


def save_lumina(path: str | Path, seed: int = 0, vqgan: bool = True) -> tuple[Path, Path]:
    """(Lumina-layout checkpoint, the same weights in transformers' layout) under directory `path`.

    Name `path` like the published checkpoints (Lumina-mGPT-7B-768) for its resolution to be read.
    """
    path = Path(path)
    reference = path.with_name(path.name + "-transformers-layout")
    model = lumina_model(seed)
    model.save_pretrained(reference)
    save_lumina_tokenizer(reference)
    path.mkdir(parents=True, exist_ok=True)
    state = load_file(reference / "model.safetensors")
    for key in list(state):
        if ".q_norm." in key or ".k_norm." in key:  # one row per shard, as Lumina-mGPT stores them
            state[key] = state[key][:: HEADS // SHARDS].contiguous()
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((reference / "config.json").read_text())
    config.update(architectures=["ChameleonXLLMXForConditionalGeneration"], z_loss_weight=0.0)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_lumina_tokenizer(path)
    if vqgan:
        save_vqgan(path)
    return path, reference


def vqgan_reference(seed: int = 1, dd: dict | None = None) -> taming_decoder.VQGAN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = taming_decoder.VQGAN(
            VQGAN["n_embed"], VQGAN["embed_dim"], VQGAN["z_channels"], **(dd or VQGAN["dd"])
        ).eval()
        with torch.no_grad():  # GroupNorm starts at identity: perturb it so a swapped norm shows
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(torch.randn_like(p) * 0.2)
    return model


def save_vqgan(directory: str | Path, seed: int = 1, dd: dict | None = None) -> Path:
    """Meta's vqgan.yaml + vqgan.ckpt for `vqgan_reference(seed)` (encoder and loss keys included, unused);
    `dd` replaces the tiny ddconfig."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dd = dd or VQGAN["dd"]
    state = dict(vqgan_reference(seed, dd).state_dict())
    state["encoder.conv_in.weight"] = torch.zeros(VQGAN["dd"]["ch"], 3, 3, 3)
    state["quant_conv.weight"] = torch.zeros(VQGAN["embed_dim"], VQGAN["z_channels"], 1, 1)
    state["loss.logvar"] = torch.zeros(())
    torch.save({"state_dict": state}, directory / "vqgan.ckpt")
    dd = dict(dd, z_channels=VQGAN["z_channels"], double_z=False, in_channels=3, out_ch=3, dropout=0.0)
    lines = [
        "model:",
        "  target: taming.models.vqgan.VQModel",
        "  params:",
        f"    embed_dim: {VQGAN['embed_dim']}",
        f"    n_embed: {VQGAN['n_embed']}",
        "    ddconfig:",
        *(f"      {k}: {json.dumps(v)}" for k, v in dd.items()),
        "    lossconfig:",
        "      target: taming.modules.losses.vqperceptual.DummyLoss",
    ]
    (directory / "vqgan.yaml").write_text("\n".join(lines).replace(": false", ": False") + "\n")
    return directory


def save_original_layout(path: str | Path, family: str) -> Path:
    """A directory in a family's original remote-code layout (config only: it is refused before weights)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "emu3": {
            "model_type": "Emu3",
            "architectures": ["Emu3ForCausalLM"],
            "auto_map": {"AutoModelForCausalLM": "modeling_emu3.Emu3ForCausalLM"},
        },
        "janus": {
            "model_type": "multi_modality",
            "architectures": ["MultiModalityCausalLM"],
            "language_config": {"model_type": "llama"},
        },
    }[family]
    (path / "config.json").write_text(json.dumps(config))
    return path


def copy_checkpoint(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
