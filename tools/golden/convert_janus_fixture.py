"""Golden fixture for Janus (step 2 of 2): the official tiny model's generation weights in transformers' Janus
layout, the layout pardecode reads (that of the deepseek-community conversions).

    python tools/golden/convert_janus_fixture.py [--fixture tests/golden/janus]

Run in pardecode's environment (transformers >= 5) after make_janus_fixture.py. The names map as
transformers' convert_janus_weights_to_hf.py maps them: `language_model.model.*` ->
`model.language_model.*`, `language_model.lm_head` -> `lm_head`, `gen_embed` ->
`model.generation_embeddings`, `gen_aligner.layers.{0,2}` -> `model.generation_aligner.{fc1,
hidden_layers.0}`, `gen_head.{output_mlp_projector,vision_head}` -> `model.generation_head.{proj_out,
vision_head}`. The understanding tower and the VQ decoder, which the official class builds at full size
and which take no part in generating image tokens, are tiny random ones here (seeded); the step-1
weights file is removed once converted, so the fixture holds one checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models
from transformers import (
    JanusConfig,
    JanusForConditionalGeneration,
    PreTrainedTokenizerFast,
)

RENAMES = [
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("gen_embed.", "model.generation_embeddings."),
    ("gen_aligner.layers.0.", "model.generation_aligner.fc1."),
    ("gen_aligner.layers.2.", "model.generation_aligner.hidden_layers.0."),
    ("gen_head.output_mlp_projector.", "model.generation_head.proj_out."),
    ("gen_head.vision_head.", "model.generation_head.vision_head."),
]
TEXT_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)


def renamed(key: str) -> str:
    for old, new in RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    raise KeyError(f"no transformers name for {key}")


def config_of(official: dict) -> JanusConfig:
    text = {k: official["language_config"][k] for k in TEXT_KEYS if k in official["language_config"]}
    gen = official["gen_head_config"]["params"]
    code_dim = official["gen_vision_config"]["params"]["n_embed"]
    depth = official["gen_aligner_config"]["params"]["depth"]
    return JanusConfig(
        text_config=dict(model_type="llama", **text),
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
            embed_dim=code_dim,
            num_embeddings=gen["image_token_size"],
            latent_channels=code_dim,
            base_channels=32,
            channel_multiplier=[1, 1],
            num_res_blocks=1,
            projection_dim=gen["image_token_embed"],
            image_token_embed_dim=gen["n_embed"],
            num_hidden_layers=depth,
        ),
        image_token_id=4,
        tie_word_embeddings=False,  # Janus keeps its text embeddings and lm_head apart
    )


def save_tokenizer(path: Path, specials: list[str], vocab: dict[str, int]) -> None:
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(specials)
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token=specials[1],
        eos_token=specials[2],
        pad_token=specials[0],
        extra_special_tokens={
            "image_token": "<image_placeholder>",
            "boi_token": "<begin_of_image>",
            "eoi_token": "<end_of_image>",
        },
    ).save_pretrained(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=Path("tests/golden/janus"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import make_janus_fixture as step1

    data = json.loads((args.fixture / "fixture.json").read_text())
    official = json.loads((args.fixture / "official_config.json").read_text())
    weights = args.fixture / "official_weights.safetensors"
    state = {renamed(k): v for k, v in load_file(weights).items()}
    torch.manual_seed(0)
    model = JanusForConditionalGeneration(config_of(official)).eval()
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise SystemExit(f"no place of that shape in transformers' Janus for {bad}")
    model.load_state_dict(state, strict=False)
    saved = model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in state.items()), "a converted weight did not land"
    out = args.fixture / data["checkpoint"]
    model.save_pretrained(out)
    save_tokenizer(out, step1.SPECIALS, step1.vocabulary())
    weights.unlink()
    (args.fixture / "official_config.json").rename(out / "official_config.json")
    print(json.dumps({"converted": len(state), "out": str(out)}))


if __name__ == "__main__":
    sys.exit(main())
