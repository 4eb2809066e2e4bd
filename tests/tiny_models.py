"""Tiny random Chameleon (Lumina-mGPT-style) and Emu3 checkpoints for tests.

Each builder writes a complete checkpoint directory (config, weights, a character-level tokenizer
whose vocabulary agrees with the model's `vocabulary_map`, and for Chameleon a `pardecode.json`), so
tests exercise the same `from_pretrained(path)` route a real checkpoint takes. Models are a few
thousand parameters: a forward pass takes milliseconds on CPU.
"""

from __future__ import annotations

import functools
import json
import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, models
from transformers import (
    ChameleonConfig,
    ChameleonForConditionalGeneration,
    Emu3Config,
    Emu3ForConditionalGeneration,
    PreTrainedTokenizerFast,
)

VOCAB = 128
TEXT_CHARS = string.ascii_letters + string.digits + " .,:;*!?'-\n"

# Chameleon: ids of the Lumina-mGPT-style special tokens in the tiny vocabulary
CHAMELEON_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<sep>", "<soi>", "<eoi>", "<eol>"]
CHAMELEON_SIZE_BASE, CHAMELEON_SIZES = 9, 8  # size tokens 9..16
CHAMELEON_IMAGE_LO, CHAMELEON_IMAGE_N = 17, 32  # image tokens 17..48
CHAMELEON_JSON = {
    "family": "chameleon",
    "bos_id": 1,
    "separator_id": 5,
    "start_of_image_id": 6,
    "end_of_image_id": 7,
    "end_of_line_id": 8,
    "size_token_base": CHAMELEON_SIZE_BASE,
    "tokens_per_grid_unit": 2,
    "pixels_per_token": 2,
    "image_token_range": [CHAMELEON_IMAGE_LO, CHAMELEON_IMAGE_LO + CHAMELEON_IMAGE_N],
    "prompt_template": "Generate an image of {W}x{H} according to the following prompt:\n{prompt}",
    "default_size": [8, 8],
    "cfg_scale": 3.0,
    "top_k": 20,
}

# Emu3: the real model's special token names, tiny ids
EMU3_SPECIALS = [
    "<|endoftext|>",
    "<|extra_203|>",
    "<|extra_204|>",
    "<unk>",
    "<image>",
    "<|image start|>",
    "<|image end|>",
    "<|image token|>",
    "<|extra_200|>",
    "<|extra_201|>",
]
EMU3_VISUAL_LO, EMU3_VISUAL_N = 10, 32  # visual tokens 10..41
#: the named special tokens Emu3's tokenizer carries (what Emu3Processor reads)
EMU3_NAMED = {
    "image_token": "<image>",
    "boi_token": "<|image start|>",
    "eoi_token": "<|image end|>",
    "image_wrapper_token": "<|image token|>",
    "eof_token": "<|extra_201|>",
}


# Janus: DeepSeek's special token names, tiny ids; image tokens are a separate 32-entry codebook
JANUS_SPECIALS = [
    "<｜▁pad▁｜>",
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<unk>",
    "<image_placeholder>",
    "<begin_of_image>",
    "<end_of_image>",
    "<|User|>",
    "<|Assistant|>",
]
JANUS_CODEBOOK = 32


def _imgimg_name(i: int) -> str:
    """Chameleon's image-token spelling: digits as letters A-J, framed by IMGIMG ... Z."""
    return "IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(i)) + "Z"


def _vocabulary(specials: list[str]) -> dict[str, int]:
    vocab = {name: i for i, name in enumerate(specials)}
    for ch in TEXT_CHARS:
        vocab.setdefault(ch, len(vocab))
    assert len(vocab) <= VOCAB, len(vocab)
    return vocab


def _save_tokenizer(path: Path, vocab: dict[str, int], special: list[str], **roles) -> None:
    """A character-level tokenizer (BPE without merges) over `vocab`; `special` are never split."""
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(special)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **roles).save_pretrained(path)


def chameleon_vocabulary() -> dict[str, int]:
    names = list(CHAMELEON_SPECIALS)
    names += [f"<size{i}>" for i in range(CHAMELEON_SIZES)]
    names += [_imgimg_name(i) for i in range(CHAMELEON_IMAGE_N)]
    return _vocabulary(names)


def chameleon_config(**overrides) -> ChameleonConfig:
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        vocabulary_map=chameleon_vocabulary(),
        vq_config=dict(
            embed_dim=5, num_embeddings=5, latent_channels=5, in_channels=3, base_channels=32, channel_multiplier=[1, 2]
        ),
    )
    settings.update(overrides)
    return ChameleonConfig(**settings)


def emu3_vocabulary() -> dict[str, int]:
    names = list(EMU3_SPECIALS) + [f"<|visual token{i:06d}|>" for i in range(EMU3_VISUAL_N)]
    return _vocabulary(names)


def emu3_config(**text_overrides) -> Emu3Config:
    text = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    text.update(text_overrides)
    vq = dict(
        codebook_size=EMU3_VISUAL_N,
        embed_dim=4,
        latent_channels=4,
        temporal_downsample_factor=1,
        base_channels=32,
        channel_multiplier=[1, 2, 1],
        hidden_size=32,
        attn_resolutions=[],
        num_res_blocks=1,
    )
    return Emu3Config(text_config=text, vq_config=vq, vocabulary_map=emu3_vocabulary())


def save_tiny_chameleon(path: str | Path, seed: int = 0, with_json: bool = True, **config) -> Path:
    """Write a tiny random Lumina-mGPT-style checkpoint (Chameleon weights + tokenizer + pardecode.json)."""
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ChameleonForConditionalGeneration(chameleon_config(**config)).eval()
    model.save_pretrained(path)
    vocab = chameleon_vocabulary()
    specials = [name for name in vocab if len(name) > 1]
    _save_tokenizer(path, vocab, specials, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if with_json:
        (path / "pardecode.json").write_text(json.dumps(CHAMELEON_JSON, indent=2))
    return path


def save_tiny_emu3(path: str | Path, seed: int = 0, **text_config) -> Path:
    """Write a tiny random Emu3 checkpoint (text model + VQ decoder + tokenizer)."""
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Emu3ForConditionalGeneration(emu3_config(**text_config)).eval()
    model.save_pretrained(path)
    vocab = emu3_vocabulary()
    specials = [name for name in vocab if len(name) > 1]
    _save_tokenizer(
        path,
        vocab,
        specials,
        bos_token="<|extra_203|>",
        eos_token="<|extra_204|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=EMU3_NAMED,
    )
    return path


def janus_config(**text_overrides):
    """Janus with a 4 x 4 token grid (16 px images -> 4 patches of 4 px; VQ decodes to 8 x 8 px)."""
    from transformers import JanusConfig

    text = dict(
        model_type="llama",
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    text.update(text_overrides)
    return JanusConfig(
        text_config=text,
        vision_config=dict(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
            image_size=16,
            patch_size=4,
            num_image_tokens=16,
            projection_dim=32,
            depth=1,
        ),
        vq_config=dict(
            embed_dim=4,
            num_embeddings=JANUS_CODEBOOK,
            latent_channels=4,
            base_channels=32,
            channel_multiplier=[1, 2],
            num_res_blocks=1,
            projection_dim=32,
            image_token_embed_dim=32,
            num_hidden_layers=1,
        ),
        image_token_id=4,
    )


def save_tiny_janus(path: str | Path, seed: int = 0, **text_config) -> Path:
    """Write a tiny random Janus checkpoint (Llama body, generation head, VQ decoder, tokenizer)."""
    from transformers import JanusForConditionalGeneration

    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(janus_config(**text_config)).eval()
    model.save_pretrained(path)
    vocab = _vocabulary(JANUS_SPECIALS)
    _save_tokenizer(
        path,
        vocab,
        list(JANUS_SPECIALS),
        bos_token=JANUS_SPECIALS[1],
        eos_token=JANUS_SPECIALS[2],
        pad_token=JANUS_SPECIALS[0],
        extra_special_tokens={
            "image_token": "<image_placeholder>",
            "boi_token": "<begin_of_image>",
            "eoi_token": "<end_of_image>",
        },
    )
    return path


_ROOT: Path | None = None


def _scratch() -> Path:
    """One temporary directory per test process for the cached checkpoints below."""
    global _ROOT
    if _ROOT is None:
        import atexit
        import shutil
        import tempfile

        _ROOT = Path(tempfile.mkdtemp(prefix="pardecode-tiny-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


@functools.cache
def chameleon_dir() -> Path:
    """A tiny Lumina-mGPT-style checkpoint directory, written once per test process."""
    return save_tiny_chameleon(_scratch() / "chameleon")


@functools.cache
def emu3_dir() -> Path:
    """A tiny Emu3 checkpoint directory, written once per test process."""
    return save_tiny_emu3(_scratch() / "emu3")


@functools.cache
def chameleon_backbone():
    from pardecode.adapters.chameleon import ChameleonBackbone

    return ChameleonBackbone.from_pretrained(chameleon_dir())


@functools.cache
def emu3_backbone():
    from pardecode.adapters.emu3 import Emu3Backbone

    return Emu3Backbone.from_pretrained(emu3_dir())


@functools.cache
def janus_dir() -> Path:
    """A tiny Janus checkpoint directory, written once per test process."""
    return save_tiny_janus(_scratch() / "janus")


@functools.cache
def janus_backbone():
    from pardecode.adapters.janus import JanusBackbone

    return JanusBackbone.from_pretrained(janus_dir())


#: an image size each tiny family can produce (4 x 4 tokens) and fits its context with room to spare
SMALL_SIZE = {"chameleon": (8, 8), "emu3": (16, 16), "janus": (8, 8)}
DIRS = {"chameleon": chameleon_dir, "emu3": emu3_dir, "janus": janus_dir}


def backbone(family: str):
    return {"chameleon": chameleon_backbone, "emu3": emu3_backbone, "janus": janus_backbone}[family]()


@functools.cache
def noisy_backbone(family: str):
    """A tiny backbone of `family` with a random noise-conditioning module attached (SJD2-ready).

    The level encoder's last layer is re-initialised away from zero so noise levels change the inputs.
    """
    from pardecode.adapters.chameleon import ChameleonBackbone
    from pardecode.adapters.emu3 import Emu3Backbone
    from pardecode.adapters.janus import JanusBackbone
    from pardecode.core.noise import NoiseConditioning

    cls = {"chameleon": ChameleonBackbone, "emu3": Emu3Backbone, "janus": JanusBackbone}[family]
    bb = cls.from_pretrained(DIRS[family]())
    with torch.no_grad():
        table = bb.span_embedding(bb.image_tokens)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        noise = NoiseConditioning.for_embeddings(table, hidden=16)
        torch.nn.init.normal_(noise.time[-1].weight, std=0.05)
    bb.attach_noise(noise)
    return bb
