"""Checkpoints as published: Lumina-mGPT, Emu3 and Janus in their own on-disk layouts, tiny and random.

Prompt rows are compared with each reference generator's construction, written here from its
documented behaviour (Alpha-VLLM/Lumina-mGPT inference_solver.py, BAAI/Emu3 tokenization_emu3.py,
deepseek-ai/Janus generation_inference.py and conversation.py).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import published_formats as pf
import pytest
import tiny_models
import torch
from PIL import Image

from pardecode.adapters import hf, hf_loading
from pardecode.core.config import SamplingConfig
from pardecode.core.errors import CheckpointError, ConfigError


@functools.cache
def _root() -> Path:
    return Path(tempfile.mkdtemp(prefix="pardecode-published-"))


@functools.cache
def lumina_dirs() -> tuple[Path, Path]:
    """A tiny Lumina-mGPT checkpoint named for 128 px (8 x 8 tokens) and its transformers-layout twin."""
    return pf.save_lumina(_root() / "Lumina-mGPT-7B-128")


@functools.cache
def lumina_backbone():
    from pardecode.adapters.chameleon import ChameleonBackbone

    return ChameleonBackbone.from_pretrained(lumina_dirs()[0])


def teardown_module():
    shutil.rmtree(_root(), ignore_errors=True)


# --- 1. Lumina-mGPT's published layout loads ---------------------------------------------------------


def test_lumina_layout_loads_with_norms_repeated_per_shard():
    """Stored [model_parallel_size, head_dim] norms become the per-head rows Lumina-mGPT applies at run
    time: the loaded model computes exactly what the transformers-layout twin computes."""
    from transformers import ChameleonForConditionalGeneration

    lumina, reference = lumina_dirs()
    assert json.loads((lumina / "config.json").read_text())["architectures"] == [
        "ChameleonXLLMXForConditionalGeneration"
    ]
    bb = lumina_backbone()
    twin = ChameleonForConditionalGeneration.from_pretrained(reference).eval()
    for ours, theirs in zip(bb.model.model.layers, twin.model.layers):
        for name in ("q_norm", "k_norm"):
            torch.testing.assert_close(getattr(ours.self_attn, name).weight, getattr(theirs.self_attn, name).weight)
            torch.testing.assert_close(getattr(ours.self_attn, name).bias, getattr(theirs.self_attn, name).bias)
    ids = torch.tensor([[1, 40, 50, 60, pf.LUMINA_SOI]])
    with torch.no_grad():
        torch.testing.assert_close(bb.model.model(ids).last_hidden_state, twin.model(ids).last_hidden_state)


def test_lumina_norms_that_cannot_spread_over_heads_are_a_checkpoint_error(tmp_path):
    from safetensors.torch import load_file, save_file

    path = shutil.copytree(lumina_dirs()[0], tmp_path / "Lumina-mGPT-7B-128")
    state = load_file(path / "model.safetensors")
    key = "model.layers.0.self_attn.q_norm.weight"
    state[key] = torch.ones(3, state[key].shape[1])  # 3 rows for 4 heads
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"q_norm.weight has 3 rows, which cannot be spread over 4"):
        backbone_factory("chameleon")(path=str(path))


def test_lumina_layout_with_another_mismatched_weight_is_a_checkpoint_error(tmp_path):
    """Loading tolerates the per-shard norms only: any other shape mismatch is not filled in silently."""
    from safetensors.torch import load_file, save_file

    path = shutil.copytree(lumina_dirs()[0], tmp_path / "Lumina-mGPT-7B-128")
    state = load_file(path / "model.safetensors")
    key = "model.layers.0.mlp.down_proj.weight"
    state[key] = state[key][:, :-1].contiguous()
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        CheckpointError, match=r"weights of unexpected shape for chameleon: \['model.layers.0.mlp.down_proj"
    ):
        backbone_factory("chameleon")(path=str(path))


def backbone_factory(name):
    from pardecode.api import get_backbone

    return lambda **options: get_backbone(name, **options)


# --- 3. and 4. Lumina-mGPT's rows and size as the reference builds them -----------------------------


def test_lumina_prompt_and_guidance_rows_match_the_reference():
    """Conditional: bos, the templated prompt, the separator, [soi, h, w]. Unconditional (the reference's
    CFG processor): the conditional sequence from the start-of-image token on, [soi, h, w]."""
    from pardecode.adapters.chameleon import ChameleonBackbone

    text = "Generate an image of 128x128 according to the following prompt:\na red fox"
    vocab = pf.lumina_vocabulary()
    image_head = [pf.LUMINA_SOI, pf.LUMINA_SIZE_BASE + 4, pf.LUMINA_SIZE_BASE + 4]  # 4 grid units of 32 px
    cond = [1, *(vocab[c] for c in text), pf.LUMINA_SEPARATOR_ID, *image_head]
    # the same weights in transformers' layout, and as published
    for load in (lambda: ChameleonBackbone.from_pretrained(lumina_dirs()[1]), lumina_backbone):
        bb = load()
        session = bb.start(["a red fox"], SamplingConfig(cfg_scale=3.0), size=(128, 128))
        assert session.encoded.cond == [cond]
        assert session.encoded.uncond == [cond[cond.index(pf.LUMINA_SOI) :]] == [image_head]


def test_lumina_resolution_is_read_from_the_checkpoint_name(tmp_path):
    from pardecode.adapters.chameleon import lumina_size

    for name, side in [
        ("Lumina-mGPT-7B-512", 512),
        ("Lumina-mGPT-7B-768-Omni", 768),
        ("Lumina-mGPT-34B-512", 512),
        ("models--Alpha-VLLM--Lumina-mGPT-7B-1024/snapshots/0123abc", 1024),
        ("lumina", None),
    ]:
        assert lumina_size(Path("/hub") / name) == side, name
    path = shutil.copytree(lumina_dirs()[0], tmp_path / "Lumina-mGPT-7B-512")
    bb = backbone_factory("chameleon")(path=str(path))
    assert bb.spec.default_size == (512, 512)
    assert bb.start(["a fox"], SamplingConfig()).layout.rows == 32  # 512 px / 16 px per token


def test_lumina_without_a_stated_resolution_asks_for_it(tmp_path):
    path = shutil.copytree(lumina_dirs()[0], tmp_path / "my-checkpoint")
    with pytest.raises(CheckpointError, match=r"does not state the resolution.*pass target_size=512, 768 or 1024"):
        backbone_factory("chameleon")(path=str(path))
    bb = backbone_factory("chameleon")(path=str(path), target_size=256)
    assert bb.spec.default_size == (256, 256)
    with pytest.raises(ConfigError, match="target_size must be"):
        backbone_factory("chameleon")(path=str(path), target_size="big")


# --- 2. Meta's VQGAN decodes Lumina-mGPT's tokens ------------------------------------------------------


def test_vqgan_decoder_matches_an_independent_implementation():
    pytest.importorskip("diffusers")
    from pardecode.adapters.vqgan import VQGANDecoder

    directory = pf.save_vqgan(_root() / "vqgan-only")
    ours = VQGANDecoder.load(directory)
    reference = pf.vqgan_reference()
    codes = torch.randint(0, pf.LUMINA_CODEBOOK, (2, 3, 5), generator=torch.Generator().manual_seed(0))
    expected = reference(codes)
    assert expected.shape == (2, 3, 48, 80)
    torch.testing.assert_close(ours(codes), expected, atol=1e-4, rtol=1e-4)


class LightningCallback:
    """A training-time object some checkpoints pickle beside their tensors."""


def test_vqgan_bad_files_are_checkpoint_errors(tmp_path):
    pytest.importorskip("diffusers")
    from pardecode.adapters.vqgan import VQGANDecoder

    with pytest.raises(CheckpointError, match="is not a VQGAN directory: it needs vqgan.yaml and vqgan.ckpt"):
        VQGANDecoder.load(tmp_path)
    directory = pf.save_vqgan(tmp_path / "v")
    (directory / "vqgan.yaml").write_text((directory / "vqgan.yaml").read_text().replace("ch: 32", "ch: 64"))
    with pytest.raises(CheckpointError, match="does not match"):
        VQGANDecoder.load(directory)
    torch.save({"state_dict": {"x": torch.zeros(1)}, "callback": LightningCallback()}, directory / "vqgan.ckpt")
    with pytest.raises(CheckpointError, match="cannot read .* as tensors only"):
        VQGANDecoder.load(directory)


def test_a_vqgan_directory_given_as_image_decoder_is_read_as_a_vqgan(tmp_path):
    """A path used to be read as the default model's patch codebook, whatever it held."""
    pytest.importorskip("diffusers")
    path = lumina_dirs()[1]  # transformers' layout, no VQGAN in or beside it
    bare = backbone_factory("chameleon")(path=str(path))
    assert "vqgan=" in bare.no_images_reason  # nothing in or beside the checkpoint
    vq = pf.save_vqgan(tmp_path / "chameleon" / "tokenizer")
    bb = backbone_factory("chameleon")(path=str(path), image_decoder=str(vq))
    tokens, session = _decode_ar(bb)
    images = bb.images(tokens, session)
    assert [im.size for im in images] == [(128, 128)]
    # the pixels are the reference decoder's, on the codebook indices the image tokens' names spell
    codes = session.layout.grid(tokens) - pf.LUMINA_IMAGE_LO
    expected = pf.vqgan_reference()(codes)[0]
    want = ((expected.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).permute(1, 2, 0)
    got = torch.tensor(np.array(images[0]))
    assert (got.int() - want.int()).abs().max() <= 1
    other = pf.save_vqgan(tmp_path / "vqgan-8px", dd=dict(pf.VQGAN["dd"], ch_mult=[1, 1, 1, 1]))
    with pytest.raises(
        CheckpointError, match="draws 8 px per token, but this checkpoint's images have 16 px per token"
    ):
        backbone_factory("chameleon")(path=str(path), vqgan=str(other)).images(tokens, session)
    with pytest.raises(CheckpointError, match="neither a VQGAN directory"):
        backbone_factory("chameleon")(path=str(path), image_decoder=str(tmp_path)).images(tokens, session)


def _decode_ar(bb):
    from pardecode import decode
    from pardecode.api import get_strategy

    strategy = get_strategy("ar")
    result = decode(bb, strategy, ["a fox"], sampling=SamplingConfig(top_k=50, cfg_scale=3.0), seed=0)
    return result.tokens, result.session


def test_cli_generates_a_lumina_image_grid_with_the_vqgan_beside_the_checkpoint(tmp_path, capsys):
    pytest.importorskip("diffusers")
    from pardecode.cli import main

    lumina = str(lumina_dirs()[0])
    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "generate",
                "--backbone",
                "chameleon",
                "-B",
                f"path={lumina}",
                "--strategy",
                "sjd",
                "--prompt",
                "a red fox",
                "--batch",
                "2",
                "--top-k",
                "50",
                "--json",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["image_tokens"] == 8 * 9 + 1 and report["out"] == str(out)
    assert Image.open(out).size[1] >= 128
    # and with the VQGAN named on the command line
    vq = str(pf.save_vqgan(tmp_path / "tokenizer"))
    assert (
        main(
            [
                "generate",
                "--backbone",
                "chameleon",
                "-B",
                f"path={lumina}",
                "-B",
                f"vqgan={vq}",
                "--strategy",
                "jacobi",
                "--temperature",
                "0",
                "--prompt",
                "a fox",
                "--json",
                "--out",
                str(out),
            ]
        )
        == 0
    )


# --- 5. Emu3's size prompt: one token per digit ----------------------------------------------------------


def test_emu3_prompt_and_size_have_one_token_per_digit(tmp_path):
    """Emu3's tokenizer (Qwen's pre-tokeniser) never merges digits: "10*10" is 1,0,*,1,0. A tokenizer
    with a "10" merge (as the transformers rebuild has for digit pairs) must not change the rows."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from pardecode.adapters.emu3 import Emu3Backbone

    path = shutil.copytree(tiny_models.emu3_dir(), tmp_path / "emu3")
    vocab = tiny_models.emu3_vocabulary()
    vocab["10"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("1", "0")], unk_token="<unk>"))
    tok.add_special_tokens([n for n in vocab if len(n) > 2])
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<|extra_203|>",
        eos_token="<|extra_204|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=tiny_models.EMU3_NAMED,
    ).save_pretrained(path)
    bb = Emu3Backbone.from_pretrained(path)
    assert bb.tokenizer("10", add_special_tokens=False)["input_ids"] == [vocab["10"]]  # the merge is real
    row = bb.start(["10 cats"], SamplingConfig(), size=(40, 40)).encoded.cond[0]  # 10 x 10 tokens of 4 px
    text = "10 cats" + bb.style.prompt_suffix
    size = "10*10"
    assert row == [
        bb.tokenizer.bos_token_id,
        *(vocab[c] for c in text),
        vocab["<|image start|>"],
        *(vocab[c] for c in size),
        vocab["<|image token|>"],
    ]


# --- 6. original Emu3 and Janus layouts: refused, with what to do ----------------------------------------


@pytest.mark.parametrize(
    "family, model_type, advice",
    [
        ("emu3", "Emu3", r"BAAI/Emu3-Gen-hf.*convert_emu3_weights_to_hf.py"),
        ("janus", "multi_modality", r"deepseek-community/Janus-Pro-7B.*convert_janus_weights_to_hf.py"),
    ],
)
def test_original_layouts_are_refused_with_what_to_do(family, model_type, advice, tmp_path):
    path = pf.save_original_layout(tmp_path / family, family)
    with pytest.raises(CheckpointError, match=rf"original '{model_type}' layout: .*{advice}") as err:
        backbone_factory(family)(path=str(path))
    assert "\n" not in str(err.value)


# --- 7. Janus-1.3B's prompt roles ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, template",
    [
        ("Janus-1.3B", "User: {}\n\nAssistant:"),
        ("Janus-Pro-1B", "<|User|>: {}\n\n<|Assistant|>:"),
        ("models--deepseek-community--Janus-1.3B/snapshots/abc", "User: {}\n\nAssistant:"),
    ],
)
def test_janus_template_follows_the_checkpoint_variant(name, template, tmp_path):
    """Janus' reference: DeepSeek's SFT format, empty system prompt, roles User/Assistant for Janus-1.3B
    and <|User|>/<|Assistant|> for Janus-Pro, then <begin_of_image>."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny_models.janus_dir(), path)
    bb = backbone_factory("janus")(path=str(path))
    tok = bb.tokenizer
    expected = [tok.bos_token_id, *tok(template.format("a cat"), add_special_tokens=False)["input_ids"], bb.boi_id]
    assert bb.start(["a cat"], SamplingConfig()).encoded.cond == [expected]


def test_janus_variant_option_overrides_the_name():
    bb = backbone_factory("janus")(path=str(tiny_models.janus_dir()), variant="janus-1.3b")
    assert bb.style.template == "User: {prompt}\n\nAssistant:"
    with pytest.raises(ConfigError, match=r"variant must be one of \['janus-1.3b', 'janus-pro'\], got 'v2'"):
        backbone_factory("janus")(path=str(tiny_models.janus_dir()), variant="v2")


# --- 8. dtype and device follow the machine and the checkpoint --------------------------------------------


def _spy_from_pretrained(monkeypatch, model_class) -> list[dict]:
    """Record the keywords every `model_class.from_pretrained` call receives."""
    calls: list[dict] = []
    original = model_class.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        calls.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(model_class, "from_pretrained", classmethod(spy))
    return calls


def test_auto_dtype_loads_the_checkpoint_dtype_without_a_float32_copy(tmp_path, monkeypatch):
    from transformers import ChameleonForConditionalGeneration

    path = tiny_models.save_tiny_chameleon(tmp_path / "bf16")
    model = ChameleonForConditionalGeneration.from_pretrained(path).to(torch.bfloat16)
    model.save_pretrained(path)
    calls = _spy_from_pretrained(monkeypatch, ChameleonForConditionalGeneration)
    bb = backbone_factory("chameleon")(path=str(path))
    assert [c["dtype"] for c in calls] == [torch.bfloat16]  # read in bfloat16 straight away, never in float32
    assert {p.dtype for p in bb.model.parameters()} == {torch.bfloat16} and bb.device.type == "cpu"


def test_auto_picks_bfloat16_on_cuda_and_the_stored_dtype_elsewhere():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert hf.choose_dtype("auto", cuda, torch.float32) is torch.bfloat16
    assert hf.choose_dtype("auto", cpu, torch.bfloat16) is torch.bfloat16
    assert hf.choose_dtype("auto", cpu, None) is torch.float32
    assert hf.choose_dtype("float16", cuda, torch.bfloat16) is torch.float16
    assert hf.stored_dtype({"text_config": {"dtype": "bfloat16"}}) is torch.bfloat16
    assert hf.parse_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_device_map_is_passed_to_accelerate(monkeypatch):
    pytest.importorskip("accelerate")
    from transformers import Emu3ForConditionalGeneration

    calls = _spy_from_pretrained(monkeypatch, Emu3ForConditionalGeneration)
    bb = backbone_factory("emu3")(path=str(tiny_models.emu3_dir()), device_map={"": "cpu"})
    assert calls[0]["device_map"] == {"": "cpu"}
    backbone_factory("emu3")(path=str(tiny_models.emu3_dir()))
    assert calls[1]["device_map"] == "cpu"  # one device: accelerate loads the weights straight onto it
    session = bb.start(["a cat"], SamplingConfig(), size=(16, 16))
    assert session.layout.rows == 4


def test_device_map_errors(monkeypatch):
    path = str(tiny_models.janus_dir())
    with pytest.raises(ConfigError, match=r"device_map must be one of \['auto', .*got 'everywhere'"):
        backbone_factory("janus")(path=path, device_map="everywhere")
    monkeypatch.setattr(hf_loading, "accelerate_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device_map='auto' needs accelerate: pip install 'pardecode\[big\]'"):
        backbone_factory("janus")(path=path, device_map="auto")


def test_without_accelerate_weights_load_on_the_host_in_their_dtype_then_move(monkeypatch):
    from transformers import JanusForConditionalGeneration

    monkeypatch.setattr(hf_loading, "accelerate_available", lambda: False)
    calls = _spy_from_pretrained(monkeypatch, JanusForConditionalGeneration)
    bb = backbone_factory("janus")(path=str(tiny_models.janus_dir()), dtype="bfloat16")
    assert "device_map" not in calls[0] and calls[0]["dtype"] is torch.bfloat16
    assert bb.device.type == "cpu" and bb.model.dtype is torch.bfloat16


def test_vqgan_without_diffusers_says_which_extra_to_install(monkeypatch):
    import sys

    from pardecode.adapters.vqgan import VQGANConfig, VQGANDecoder

    monkeypatch.setitem(sys.modules, "diffusers.models.autoencoders.vae", None)  # import fails
    config = VQGANConfig(n_embed=8, embed_dim=4, z_channels=4, ch=32, ch_mult=[1, 1], num_res_blocks=1, resolution=32)
    with pytest.raises(ConfigError, match=r"needs diffusers: pip install 'pardecode\[vqgan\]'"):
        VQGANDecoder(config)
