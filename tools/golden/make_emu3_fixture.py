"""Golden fixture for Emu3 (step 1 of 2): a tiny random model of the official class, and the image tokens the
official generation path produces from it, greedily.

    python tools/golden/make_emu3_fixture.py --official /path/to/Emu3 [--out tests/golden/emu3]

Run it in the virtualenv docs/checkpoints.md gives, then step 2, tools/golden/convert_emu3_fixture.py, in
pardecode's own environment (pardecode reads transformers' Emu3 conversion). What this step does:

- builds the official `Emu3ForCausalLM` from the official `Emu3Config`: 2 layers of width 8, 2 heads, a
  vocabulary of 151,643 text ranks + 205 + 3 fixed specials + 3 image specials + 32 visual tokens, weights
  rounded to bfloat16 (the stored dtype) and run in float32;
- builds the official `Emu3Tokenizer` over a generated tiktoken file: the 256 single bytes at their byte
  values, then 3-byte filler ranks that all contain a byte >= 0x80, so ASCII text tokenises one byte per
  token; its special tokens land at their official ids (151,643 on) because the file has 151,643 ranks;
- builds prompts with the official `Emu3Processor` and its image processor (its VQ model stands in by
  its config only: the processor reads `ch_mult`, `codebook_size` and `spatial_scale_factor` when
  generating; the VQ model encodes and decodes pixels, which the fixture does not need) and runs
  `model.generate` with the logits processors of the official image_generation.py (unbatched CFG
  against its negative prompt, the processor's prefix constraint), greedy instead of top-k sampling,
  both prompts in one left-padded batch, at 4 x 4 and 3 x 5 tokens (spatial factor 4), CFG 3.0 and 1.0;
- writes the official state dict (bfloat16) to official_weights.safetensors, its config, and fixture.json.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import types
from pathlib import Path

import common

TEXT_RANKS, CODEBOOK, SPATIAL = 151_643, 32, 4
VISION_SPECIALS = ["<|image token|>", "<|image start|>", "<|image end|>"]
#: (ratio, image_area) -> token grids 4 x 4 and 3 rows x 5 cols at spatial factor 4
SIZES = [("1:1", 16 * 16), ("5:3", 15 * 16)]
CFGS = [3.0, 1.0]
#: the official special tokens no image-generation row contains (kept out of fixture.json)
UNUSED_SPECIALS = {"<|im_start|>", "<|im_end|>"} | {f"<|extra_{i}|>" for i in range(200)} | {"<|extra_202|>"}
POSITIVE = " masterpiece, film grained, best quality."
NEGATIVE = (
    "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry."
)


def visual_name(i: int) -> str:
    return f"<|visual token {i:06d}|>"


def write_vocabulary(root: Path) -> tuple[Path, Path]:
    ranks = root / "emu3.tiktoken"
    with ranks.open("w") as f:
        for b in range(256):
            f.write(f"{base64.b64encode(bytes([b])).decode()} {b}\n")
        for i in range(TEXT_RANKS - 256):
            token = bytes([0x80 | (i >> 16), (i >> 8) & 0xFF, i & 0xFF])
            f.write(f"{base64.b64encode(token).decode()} {256 + i}\n")
    specials = root / "emu3_vision_tokens.txt"
    specials.write_text("\n".join(VISION_SPECIALS + [visual_name(i) for i in range(CODEBOOK)]) + "\n")
    return ranks, specials


def build_model(vocab_size: int):
    import torch
    from emu3.mllm.configuration_emu3 import Emu3Config
    from emu3.mllm.modeling_emu3 import Emu3ForCausalLM

    config = Emu3Config(
        vocab_size=vocab_size,
        hidden_size=8,
        intermediate_size=19,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.5,
        image_area=16 * 16,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = Emu3ForCausalLM(config).eval()
    with torch.no_grad():  # the stored (bfloat16) values, run in float32; buffers (the rope tables) stay float32
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model


class Recorder:
    """A logits processor that keeps the first step's (guided) scores and changes nothing."""

    def __init__(self):
        self.first = None

    def __call__(self, input_ids, scores):
        if self.first is None:
            self.first = scores.detach().clone()
        return scores


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], "tests/golden/emu3")
    common.on_path(args.official)
    import tiktoken
    import torch
    import transformers
    from emu3.mllm.processing_emu3 import Emu3Processor
    from emu3.mllm.tokenization_emu3 import Emu3Tokenizer
    from emu3.tokenizer.image_processing_emu3visionvq import Emu3VisionVQImageProcessor
    from safetensors.torch import save_file
    from transformers.generation import (
        LogitsProcessorList,
        PrefixConstrainedLogitsProcessor,
        UnbatchedClassifierFreeGuidanceLogitsProcessor,
    )
    from transformers.generation.configuration_utils import GenerationConfig

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ranks, specials = write_vocabulary(Path(tmp))
        tokenizer = Emu3Tokenizer(str(ranks), str(specials), padding_side="left")
    vq = types.SimpleNamespace(
        config=types.SimpleNamespace(ch_mult=[1] * 3, codebook_size=CODEBOOK), spatial_scale_factor=SPATIAL
    )
    processor = Emu3Processor(Emu3VisionVQImageProcessor(), vq, tokenizer)
    model = build_model(len(tokenizer))
    visual = torch.tensor(tokenizer.encode([visual_name(i) for i in range(CODEBOOK)]))

    cases = []
    for ratio, area in SIZES:
        for cfg in CFGS:
            kwargs = dict(
                mode="G", ratio=[ratio] * len(common.PROMPTS), image_area=area, return_tensors="pt", padding="longest"
            )
            pos = processor(text=[p + POSITIVE for p in common.PROMPTS], **kwargs)
            neg = processor(text=[NEGATIVE] * len(common.PROMPTS), **kwargs)
            h, w = pos.image_size[:, 0], pos.image_size[:, 1]
            recorder = Recorder()
            processors = LogitsProcessorList(
                [
                    UnbatchedClassifierFreeGuidanceLogitsProcessor(cfg, model, unconditional_ids=neg.input_ids),
                    recorder,
                    PrefixConstrainedLogitsProcessor(processor.build_prefix_constrained_fn(h, w), num_beams=1),
                ]
            )
            config = GenerationConfig(
                use_cache=True,
                eos_token_id=model.config.eos_token_id,
                pad_token_id=model.config.pad_token_id,
                max_new_tokens=40960,
                do_sample=False,
            )
            with torch.no_grad():
                out = model.generate(
                    pos.input_ids, config, logits_processor=processors, attention_mask=pos.attention_mask
                )
            rows, cols = int(h[0]), int(w[0])
            span = rows * (cols + 1)
            for b, prompt in enumerate(common.PROMPTS):
                cond = pos.input_ids[b][pos.attention_mask[b].bool()].tolist()
                generated = out[b, pos.input_ids.shape[1] :].tolist()
                grid = [t for t in generated[:span] if t != model.config.eol_token_id]
                assert len(grid) == rows * cols and generated[span:] == [
                    model.config.eof_token_id,
                    model.config.eoi_token_id,
                    model.config.eos_token_id,
                ], generated
                cases.append(
                    {
                        "prompt": prompt,
                        "size": [cols * SPATIAL, rows * SPATIAL],
                        "cfg_scale": cfg,
                        "cond_row": cond,
                        "uncond_row": neg.input_ids[b].tolist(),
                        "image_tokens": generated,  # the rows with their end-of-line tokens, then EOF, EOI, EOS
                        "first_step_guided_logits": common.top_logits(recorder.first[b].float(), visual),
                    }
                )
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, args.out / "official_weights.safetensors", metadata={"format": "pt"})
    (args.out / "official_config.json").write_text(model.config.to_json_string(use_diff=False))
    common.write_fixture(
        args.out,
        {
            "family": "emu3",
            "checkpoint": "Emu3-Gen-tiny",
            "official": {
                "repository": "baaivision/Emu3",
                "commit": common.official_commit(args.official, args.commit),
                "generation": "image_generation.py's generate() call and logits processors, do_sample=False",
            },
            "versions": common.versions(torch, transformers, tiktoken),
            "stored_dtype": "bfloat16",
            "compute_dtype": "float32",
            "special_ids": {name: i for name, i in tokenizer.special_tokens.items() if name not in UNUSED_SPECIALS},
            "cases": cases,
        },
    )
    print(json.dumps({"cases": len(cases), "out": str(args.out)}))


if __name__ == "__main__":
    sys.exit(main())
