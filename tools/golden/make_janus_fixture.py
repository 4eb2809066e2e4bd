"""Golden fixture for Janus (step 1 of 2): a tiny random model of the official class, and the image tokens the
official generation loop produces from it, greedily.

    python tools/golden/make_janus_fixture.py --official /path/to/Janus [--out tests/golden/janus]

Run it in the virtualenv docs/checkpoints.md gives (the official code's versions), then step 2,
tools/golden/convert_janus_fixture.py, in pardecode's own environment: pardecode reads transformers'
conversion of Janus checkpoints, which only transformers >= 4.51 can write. What this step does:

- builds `MultiModalityCausalLM` (the class deepseek-ai/Janus checkpoints name) from a tiny config:
  a 2-layer Llama of width 32, a 32-entry image codebook embedded by `gen_embed` + `gen_aligner` and
  scored by `gen_head`, Janus-Pro's prompt format ("deepseek" template), a character-level tokenizer
  with DeepSeek's special tokens. The class builds its SigLIP understanding tower (cut to 1 layer
  here) and its VQ-16 image decoder at their fixed full sizes; neither takes part in generating image
  tokens, and they are not kept;
- builds each prompt with the official `VLChatProcessor` (sft template + image start tag) and runs the
  `generate` function of the official generation_inference.py, read from the checkout and executed as
  is, on a 4 x 4 token image, one prompt at a time (parallel_size=1: one conditional and one
  pad-masked unconditional row), with two changes made from outside: its `torch.multinomial` draw
  is replaced by the argmax (greedy), and `.cuda()` leaves tensors on the CPU. Its pixel decoding
  is intercepted once the tokens are known;
- writes the generation weights (the Llama, gen_embed, gen_aligner, gen_head) with the official
  state-dict names to official_weights.safetensors, the tokenizer, and fixture.json.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import common

SPECIALS = [
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
TEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;*!?'-\n"
HIDDEN, CODEBOOK, CODE_DIM, TOKENS = 32, 32, 8, 16  # 16 image tokens: a 4 x 4 grid
CFGS = [5.0, 1.0]
GENERATION_KEYS = ("language_model.", "gen_embed.", "gen_aligner.", "gen_head.")


def vocabulary() -> dict[str, int]:
    vocab = {name: i for i, name in enumerate(SPECIALS)}
    for ch in TEXT:
        vocab.setdefault(ch, len(vocab))
    return vocab


def save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(vocab=vocabulary(), merges=[], unk_token="<unk>"))
    tok.add_special_tokens(SPECIALS)
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token=SPECIALS[1], eos_token=SPECIALS[2], pad_token=SPECIALS[0]
    ).save_pretrained(path)


def build_model():
    import torch
    from janus.models.modeling_vlm import MultiModalityCausalLM, MultiModalityConfig

    mlp = dict(projector_type="mlp_gelu", depth=2)
    config = MultiModalityConfig(
        vision_config=dict(
            cls="CLIPVisionTower",
            model_type="vision",
            params=dict(model_name="siglip_large_patch16_384", image_size=16, select_feature="same", select_layer=1),
        ),
        aligner_config=dict(cls="MlpProjector", model_type="aligner", params=dict(mlp, input_dim=1024, n_embed=HIDDEN)),
        gen_vision_config=dict(
            cls="VQ-16", model_type="gen_vision", params=dict(image_token_size=CODEBOOK, n_embed=CODE_DIM)
        ),
        gen_aligner_config=dict(
            cls="MlpProjector", model_type="gen_aligner", params=dict(mlp, input_dim=CODE_DIM, n_embed=HIDDEN)
        ),
        gen_head_config=dict(
            cls="vision_head",
            model_type="gen_head",
            params=dict(image_token_embed=HIDDEN, image_token_size=CODEBOOK, n_embed=HIDDEN),
        ),
        language_config=dict(
            vocab_size=len(vocabulary()),
            hidden_size=HIDDEN,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            initializer_range=0.3,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        ),
    )
    torch.manual_seed(0)
    return MultiModalityCausalLM(config).float().eval()


def official_generate(official: Path, torch):
    """The `generate` function of the official generation_inference.py, executed from the checkout as is
    (the module's other top-level code loads a hub model, so only the function is taken)."""
    import numpy as np
    import PIL.Image
    from janus.models import MultiModalityCausalLM, VLChatProcessor

    source = (official / "generation_inference.py").read_text()
    tree = ast.parse(source)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "generate")
    namespace = {
        "torch": GreedyTorch(torch),
        "np": np,
        "os": os,
        "PIL": PIL,
        "MultiModalityCausalLM": MultiModalityCausalLM,
        "VLChatProcessor": VLChatProcessor,
    }
    code = compile(ast.Module(body=[function], type_ignores=[]), str(official / "generation_inference.py"), "exec")
    exec(code, namespace)  # noqa: S102 (the official function, run as written)
    return namespace["generate"]


class Absent(types.ModuleType):
    """A stand-in for torchvision, which the official package imports for its understanding path's image
    preprocessing only: every attribute is another stand-in, and calling one is an error."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return Absent(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self.__name__} is not available in this environment")

    def __mro_entries__(self, bases):
        return (object,)


class AbsentFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every torchvision import with an `Absent` package."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = Absent(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def stub_torchvision() -> None:
    """Install `Absent` as torchvision when the real one does not import (see docs/checkpoints.md)."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError):  # a CUDA build beside CPU torch fails registering its operators
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, AbsentFinder())


class GreedyTorch:
    """`torch` for the official loop, with its multinomial draw replaced by the argmax."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def multinomial(self, probs, num_samples=1, **kwargs):
        assert num_samples == 1
        return probs.argmax(dim=-1, keepdim=True)


class Decoded(Exception):
    """Raised from the intercepted pixel decoder: the tokens are known."""

    def __init__(self, tokens):
        self.tokens = tokens


def official_case(generate, model, processor, prompt: str, cfg: float) -> dict:
    import torch

    conversation = [{"role": "<|User|>", "content": prompt}, {"role": "<|Assistant|>", "content": ""}]
    text = processor.apply_sft_template_for_multi_turn_prompts(
        conversations=conversation, sft_format=processor.sft_format, system_prompt=""
    )
    text = text + processor.image_start_tag
    seen: dict = {}

    def head_hook(module, inputs, output):
        if "first" not in seen:
            cond, uncond = output[0::2], output[1::2]
            seen["first"] = (uncond + cfg * (cond - uncond))[0].detach().clone()

    def intercept(tokens, shape):
        raise Decoded(tokens.clone())

    embed = model.language_model.get_input_embeddings()

    def rows_hook(module, inputs, output):
        if "rows" not in seen:
            seen["rows"] = inputs[0].tolist()

    hooks = [model.gen_head.register_forward_hook(head_hook), embed.register_forward_hook(rows_hook)]
    model.gen_vision_model.decode_code = intercept
    try:
        generate(
            model,
            processor,
            text,
            temperature=1,
            parallel_size=1,
            cfg_weight=cfg,
            image_token_num_per_image=TOKENS,
            img_size=TOKENS // 4 * 16,
            patch_size=16,
        )
        raise RuntimeError("the official loop finished without decoding its tokens")
    except Decoded as done:
        tokens = done.tokens[0].tolist()
    finally:
        for h in hooks:
            h.remove()
    cond, uncond = seen["rows"]
    return {
        "prompt": prompt,
        "size": None,
        "cfg_scale": cfg,
        "cond_row": cond,
        "uncond_row": uncond,
        "image_tokens": tokens,
        "first_step_guided_logits": common.top_logits(seen["first"].float(), torch.arange(CODEBOOK)),
    }


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], "tests/golden/janus")
    official = args.official
    common.on_path(official)
    import torch
    import transformers
    from safetensors.torch import save_file

    stub_torchvision()
    from janus.models import VLChatProcessor, VLMImageProcessor

    torch.set_num_threads(1)
    torch.Tensor.cuda = lambda self, *a, **k: self  # the official loop moves its buffers to CUDA
    model = build_model()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer(Path(tmp))
        tokenizer = transformers.LlamaTokenizerFast.from_pretrained(tmp)
    processor = VLChatProcessor(VLMImageProcessor(image_size=16), tokenizer, num_image_tokens=TOKENS)
    generate = official_generate(official, torch)
    cases = [official_case(generate, model, processor, p, cfg) for cfg in CFGS for p in common.PROMPTS]
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith(GENERATION_KEYS)}
    save_file(state, args.out / "official_weights.safetensors", metadata={"format": "pt"})
    (args.out / "official_config.json").write_text(model.config.to_json_string(use_diff=False))
    common.write_fixture(
        args.out,
        {
            "family": "janus",
            "checkpoint": "Janus-Pro-tiny",
            "official": {
                "repository": "deepseek-ai/Janus",
                "commit": common.official_commit(official, args.commit),
                "generation": "generation_inference.py generate() with argmax for torch.multinomial",
            },
            "versions": common.versions(torch, transformers),
            "stored_dtype": "float32",
            "compute_dtype": "float32",
            "cases": cases,
        },
    )
    print(json.dumps({"cases": len(cases), "out": str(args.out)}))


if __name__ == "__main__":
    sys.exit(main())
