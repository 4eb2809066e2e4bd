"""Golden fixture for Lumina-mGPT: a tiny random checkpoint saved by the official model class, and the image
tokens the official solver's logits processors produce from it, greedily.

    python tools/golden/make_lumina_fixture.py --official /path/to/Lumina-mGPT [--out tests/golden/lumina]

Run it in the virtualenv docs/checkpoints.md gives (the official code's versions). What it does:

- builds `ChameleonXLLMXForConditionalGeneration` (the class Lumina-mGPT checkpoints name) from a tiny
  config with 4 heads over 2 model-parallel shards, so each layer's q/k norms are stored once per shard
  as the published checkpoints store them; Lumina-mGPT's token ids (image tokens 4..8195, <eoss> 8196,
  <racm3:break> 8197, <reserved08706> 8710, <reserved08799> 8803, size tokens 8804+n) in a tiny
  character-level tokenizer; saves it in bfloat16 in 3 shards with an index, as published;
- reloads it as the official solver does (`model.chameleon.ChameleonForConditionalGeneration`, in
  float32) and builds each prompt with the official item processor (`FlexARItemProcessor`'s
  conversation template and tokenizer wrapper; its VQGAN, needed for pixels only, is not loaded),
  then appends [start-of-image, h, w] (the official solver samples the two size tokens; pardecode
  asks for a size, so the fixture gives them);
- decodes greedily with `model.generate(do_sample=False)` and the official solver's own logits
  processors (`create_logits_processor`: unbatched CFG on [soi, h, w], the layout constraints, image
  top-k), one prompt at a time as the solver does, and records the tokens, the two rows the model saw
  and the first step's guided logits.

The processors build their masks on "cuda"; on a CPU-only machine the module's `torch` is given a thin
stand-in that places those tensors on the CPU instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import common

HEADS, SHARDS = 4, 2
CODEBOOK = 8192
IMAGE_LO, EOI, SOI, SEP, EOL, SIZE_BASE = 4, 8196, 8197, 8710, 8803, 8804
RESERVED_END = SIZE_BASE + 16  # size tokens for up to 16 grid units (512 px)
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
TEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;*!?'-\n"
NAME = "Lumina-mGPT-7B-128"  # the resolution in the name, as published checkpoints state it
SIZES = [(128, 128), (128, 64)]  # (W, H): 8 x 8 and 4 x 8 tokens
CFGS = [3.0, 1.0]


def imgimg(i: int) -> str:
    """Chameleon's spelling of image token i: its digits as letters A-J between IMGIMG and Z."""
    return "IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(i)) + "Z"


def vocabulary() -> dict[str, int]:
    vocab = {name: i for i, name in enumerate(SPECIALS)}
    for i in range(CODEBOOK):
        vocab[imgimg(i)] = IMAGE_LO + i
    named = {EOI: "<eoss>", SOI: "<racm3:break>"}
    for tid in range(IMAGE_LO + CODEBOOK, RESERVED_END):
        vocab[named.get(tid, f"<reserved{tid - 4:05d}>")] = tid
    for ch in TEXT:
        vocab.setdefault(ch, len(vocab))
    return vocab


def save_tokenizer(path: Path, vocab: dict[str, int]) -> None:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens([*SPECIALS, "<reserved08706>", "<racm3:break>", "<eoss>"])  # the ones text may spell
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    ).save_pretrained(path)


def build(path: Path) -> None:
    import torch
    from model import ChameleonXLLMXConfig, ChameleonXLLMXForConditionalGeneration

    vocab = vocabulary()
    config = ChameleonXLLMXConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        model_parallel_size=SHARDS,
        max_position_embeddings=512,
        initializer_range=0.1,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        vocabulary_map=vocab,
        mask_image_logits=False,
        vq_config=dict(
            embed_dim=4,
            num_embeddings=8,
            latent_channels=4,
            in_channels=3,
            base_channels=32,
            channel_multiplier=[1, 1],
            num_res_blocks=1,
            attn_resolutions=[],
        ),
    )
    config.architectures = ["ChameleonXLLMXForConditionalGeneration"]
    torch.manual_seed(0)
    model = ChameleonXLLMXForConditionalGeneration(config).eval()
    with torch.no_grad():  # norms start at identity: move them off it so a wrong layout shows in the logits
        for name, p in model.named_parameters():
            if "_norm." in name:
                p.add_(torch.randn_like(p) * 0.5)
    assert tuple(model.model.layers[0].self_attn.q_norm.weight.shape) == (SHARDS, 16 // HEADS)
    model.to(torch.bfloat16).save_pretrained(path, max_shard_size="300KB", safe_serialization=True)
    save_tokenizer(path, vocab)


class CpuTorch:
    """`torch` for the official processors' module, with their "cuda" tensors placed on the CPU."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def tensor(self, *args, device=None, **kwargs):
        return self._torch.tensor(*args, **kwargs)

    def arange(self, *args, device=None, **kwargs):
        return self._torch.arange(*args, **kwargs)


def official_case(solver, item_processor, prompt: str, size: tuple[int, int], cfg: float) -> dict:
    import torch

    width, height = size
    text = f"Generate an image of {width}x{height} according to the following prompt:\n{prompt}"
    row = item_processor.process_item(
        {"image": [], "conversations": [{"from": "human", "value": text}, {"from": "gpt", "value": None}]}
    )
    grid = [SIZE_BASE + height // 32, SIZE_BASE + width // 32]
    row = [*row, SOI, *grid]
    processors = solver.create_logits_processor(cfg=cfg, image_top_k=2000)
    guidance, layout = processors[0], processors[1]
    seen: dict = {}
    original = type(guidance).__call__

    def recording(self, input_ids, scores):
        out = original(self, input_ids, scores)
        if "first" not in seen:
            seen["first"] = out[0].detach().clone()
            context = self.unconditional_context
            seen["uncond"] = None if cfg == 1.0 else context["input_ids"][0].tolist()
        return out

    type(guidance).__call__ = recording
    try:
        rows, cols = height // 16, width // 16
        length = rows * (cols + 1) + 1
        ids = torch.tensor([row])
        out = solver.model.generate(
            ids,
            do_sample=False,
            max_new_tokens=length,
            min_new_tokens=length,
            logits_processor=processors,
            pad_token_id=0,
            eos_token_id=[SEP],
            attention_mask=torch.ones_like(ids),
        )
    finally:
        type(guidance).__call__ = original
    assert layout.h_latent_dim == rows and layout.w_latent_dim == cols
    image = torch.arange(IMAGE_LO, IMAGE_LO + CODEBOOK)
    return {
        "prompt": prompt,
        "size": [width, height],
        "cfg_scale": cfg,
        "cond_row": row,
        "uncond_row": seen["uncond"],
        "image_tokens": out[0, len(row) :].tolist(),
        "first_step_guided_logits": common.top_logits(seen["first"].float(), image),
    }


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], "tests/golden/lumina")
    official = args.official
    common.on_path(official / "lumina_mgpt", official)
    import inference_solver
    import torch
    import transformers
    from data.convertsation import Conversation
    from data.item_processor import FlexARItemProcessor
    from model.chameleon import ChameleonForConditionalGeneration
    from xllmx.data.item_processor import MMConvItemProcessor

    torch.set_num_threads(1)
    checkpoint = args.out / NAME
    build(checkpoint)
    inference_solver.torch = CpuTorch(torch)
    solver = inference_solver.FlexARInferenceSolver.__new__(inference_solver.FlexARInferenceSolver)
    # the class the official solver loads checkpoints with (the XLLMX subclass's forward is for training)
    solver.model = ChameleonForConditionalGeneration.from_pretrained(checkpoint, torch_dtype=torch.float32).eval()
    item_processor = FlexARItemProcessor.__new__(FlexARItemProcessor)  # without its VQGAN (pixels only)
    MMConvItemProcessor.__init__(
        item_processor, {"<|image|>": item_processor.process_image}, ["<|image|>"], str(checkpoint), Conversation
    )
    solver.item_processor = item_processor
    cases = [
        official_case(solver, item_processor, prompt, size, cfg)
        for size in SIZES
        for cfg in CFGS
        for prompt in common.PROMPTS
    ]
    common.write_fixture(
        args.out,
        {
            "family": "lumina-mgpt",
            "checkpoint": NAME,
            "official": {
                "repository": "Alpha-VLLM/Lumina-mGPT",
                "commit": common.official_commit(official, args.commit),
                "generation": "FlexARInferenceSolver.create_logits_processor + model.generate(do_sample=False)",
            },
            "versions": common.versions(torch, transformers),
            "stored_dtype": "bfloat16",
            "compute_dtype": "float32",
            "cases": cases,
        },
    )
    print(json.dumps({"cases": len(cases), "out": str(args.out)}))


if __name__ == "__main__":
    sys.exit(main())
