"""Golden fixture for Emu3 (step 2 of 2): the official tiny model in transformers' Emu3 layout
(`Emu3ForConditionalGeneration`, that of BAAI/Emu3-Gen-hf), the layout pardecode reads.

    python tools/golden/convert_emu3_fixture.py [--fixture tests/golden/emu3]

Run in pardecode's environment (transformers >= 5) after make_emu3_fixture.py. As transformers'
convert_emu3_weights_to_hf.py does: the text model's weights move under `model.text_model.` (`lm_head`
stays), the official config's text fields become `text_config` (`rope_theta` as rope parameters),
the tokenizer's vocabulary becomes `vocabulary_map`, and the VQ model joins the checkpoint as
`model.vqmodel` (a tiny random one here, seeded: it takes no part in generating tokens). The
tokenizer is rebuilt for transformers: the official one (tiktoken, 151,643 byte-level ranks) gives
ASCII text one token per byte, so a character-level tokenizer over printable ASCII at the byte values,
with the official special tokens at their ids, encodes the fixture's prompts identically. Weights are
saved in bfloat16, as the official step stored them; the step-1 files are removed once converted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models
from transformers import Emu3Config, Emu3ForConditionalGeneration, PreTrainedTokenizerFast

TEXT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "attention_dropout",
    "initializer_range",
)
#: the tokenizer roles of Emu3's transformers tokenizer (what Emu3Processor and pardecode read)
ROLES = {"bos_token": "<|extra_203|>", "eos_token": "<|extra_204|>", "pad_token": "<|endoftext|>"}
NAMED = {
    "boi_token": "<|image start|>",
    "eoi_token": "<|image end|>",
    "image_wrapper_token": "<|image token|>",
    "eof_token": "<|extra_201|>",
}


def renamed(name: str) -> str:
    return name if name.startswith("lm_head.") else "model.text_model." + name.removeprefix("model.")


def vocabulary(special_ids: dict[str, int]) -> dict[str, int]:
    """Printable ASCII at its byte values (the official ranks of single bytes), then the special tokens."""
    vocab = {chr(b): b for b in range(32, 127)}
    vocab.update(special_ids)
    return vocab


def config_of(official: dict, vocab: dict[str, int], codebook: int) -> Emu3Config:
    text = {k: official[k] for k in TEXT_FIELDS}
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": official["rope_theta"]}
    vq = dict(
        codebook_size=codebook,
        embed_dim=4,
        latent_channels=4,
        temporal_downsample_factor=1,
        base_channels=32,
        channel_multiplier=[1, 1, 1],
        hidden_size=32,
        attn_resolutions=[],
        num_res_blocks=1,
    )
    return Emu3Config(text_config=text, vq_config=vq, vocabulary_map=vocab)


def save_tokenizer(path: Path, vocab: dict[str, int]) -> None:
    specials = [name for name in vocab if len(name) > 1]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.add_special_tokens(specials)
    PreTrainedTokenizerFast(tokenizer_object=tok, extra_special_tokens=NAMED, **ROLES).save_pretrained(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=Path("tests/golden/emu3"))
    args = parser.parse_args()
    data = json.loads((args.fixture / "fixture.json").read_text())
    official = json.loads((args.fixture / "official_config.json").read_text())
    weights = args.fixture / "official_weights.safetensors"
    vocab = vocabulary(data["special_ids"])
    codebook = sum(name.startswith("<|visual token") for name in vocab)
    state = {renamed(k): v for k, v in load_file(weights).items()}
    torch.manual_seed(0)
    model = Emu3ForConditionalGeneration(config_of(official, vocab, codebook)).eval()
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if not k.startswith("model.vqmodel.") and k not in state]
    if bad or missing:
        raise SystemExit(f"no place of that shape in transformers' Emu3 for {bad}; not given: {missing}")
    model.load_state_dict(state, strict=False)
    model = model.to(torch.bfloat16)
    saved = model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in state.items()), "a converted weight did not land"
    out = args.fixture / data["checkpoint"]
    model.save_pretrained(out)
    save_tokenizer(out, vocab)
    weights.unlink()
    (args.fixture / "official_config.json").rename(out / "official_config.json")
    print(json.dumps({"converted": len(state), "out": str(out)}))


if __name__ == "__main__":
    sys.exit(main())
