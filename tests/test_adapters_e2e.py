"""End to end through the registry and the decoding loop: strategies, checkpoints, images."""

from __future__ import annotations

import json
import shutil

import attrs
import pytest
import tiny_models
import torch

from pardecode import decode
from pardecode.api import get_strategy
from pardecode.core.config import SamplingConfig
from pardecode.core.errors import ConfigError
from pardecode.core.plugins import plugins

FAMILIES = ["chameleon", "emu3", "janus"]
PROMPTS = ["a red dress", "an ankle boot with laces"]


def strategy_names() -> list[str]:
    return plugins().strategies.names()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy", strategy_names())
@pytest.mark.parametrize("greedy", [False, True], ids=["reference-sampling", "greedy"])
def test_every_strategy_yields_a_valid_image_layout(family, strategy, greedy):
    """Reference sampling (CFG, top-k, temperature 1) or greedy with CFG; prompts of different lengths.

    The backbone carries a noise-conditioning module so denoising strategies run too; every other
    strategy ignores it.
    """
    bb = tiny_models.noisy_backbone(family)
    sampling = attrs.evolve(bb.default_sampling, temperature=0.0) if greedy else bb.default_sampling
    try:
        result = decode(bb, strategy, PROMPTS, sampling=sampling, seed=3, size=tiny_models.SMALL_SIZE[family])
    except ConfigError as err:
        if not any(reason in str(err) for reason in ("temperature", "codebook")):
            raise
        pytest.skip(f"{strategy} refuses this sampling, backbone or layout: {err}")
    layout = result.session.layout
    assert result.tokens.shape == (2, layout.length)
    assert bool(layout.is_valid(result.tokens).all())
    assert 1 <= result.trace.forward_passes <= layout.length
    grid = bb.grid(result.tokens) if family == "janus" else layout.grid(result.tokens)
    assert grid.shape == (2, 4, 4) and bool(torch.isin(grid, bb.image_tokens).all())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("cfg", [1.0, 3.0])
@pytest.mark.parametrize("strategy", [s for s in strategy_names() if s != "ar"])
def test_parallel_strategies_at_temperature_zero_equal_greedy_ar(family, cfg, strategy):
    if not get_strategy(strategy).lossless:
        pytest.skip(f"{strategy} is lossy: greedy AR's output is not its contract")
    bb = tiny_models.noisy_backbone(family)
    sampling = SamplingConfig(temperature=0, cfg_scale=cfg)
    size = tiny_models.SMALL_SIZE[family]
    ar = decode(bb, "ar", PROMPTS, sampling=sampling, size=size)
    try:
        parallel = decode(bb, strategy, PROMPTS, sampling=sampling, size=size, strategy_options={"window": 6})
    except ConfigError as err:
        if "codebook" not in str(err):
            raise
        pytest.skip(f"{strategy} needs an image codebook: {err}")
    assert torch.equal(parallel.tokens, ar.tokens)
    assert parallel.trace.forward_passes <= ar.trace.forward_passes


def test_chameleon_save_pretrained_then_load_through_the_adapter(tmp_path):
    """A model built from a config, saved with save_pretrained, loads by path and decodes identically."""
    factory = plugins().backbones.get("chameleon").factory
    tokenizer = tiny_models.chameleon_dir()  # any directory holding the matching tokenizer
    built = factory(config=tiny_models.chameleon_config(), tokenizer=tokenizer, spec=tiny_models.CHAMELEON_JSON)
    built.model.save_pretrained(tmp_path)
    built.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "pardecode.json").write_text(json.dumps(tiny_models.CHAMELEON_JSON))
    loaded = factory(str(tmp_path))
    sampling = SamplingConfig(temperature=0, cfg_scale=3.0)
    a = decode(built, "sjd", PROMPTS, sampling=sampling, size=(8, 8))
    b = decode(loaded, "sjd", PROMPTS, sampling=sampling, size=(8, 8))
    assert torch.equal(a.tokens, b.tokens)
    assert loaded.images(b.tokens, b.session) is None and "image_decoder" in loaded.no_images_reason


def test_emu3_save_pretrained_then_load_through_the_adapter(tmp_path):
    factory = plugins().backbones.get("emu3").factory
    built = factory(config=tiny_models.emu3_config(), tokenizer=tiny_models.emu3_dir(), default_size=(16, 16))
    built.model.save_pretrained(tmp_path)
    built.tokenizer.save_pretrained(tmp_path)
    loaded = factory(str(tmp_path), default_size=(16, 16), dtype="float32", device="cpu")
    a = decode(built, "sjd", PROMPTS, seed=1)  # reference sampling, same seed: same draws
    b = decode(loaded, "sjd", PROMPTS, seed=1)
    assert torch.equal(a.tokens, b.tokens)
    images = loaded.images(b.tokens, b.session)
    assert len(images) == 2 and images[0].size == (16, 16) and images[0].mode == "RGB"


def test_chameleon_decodes_images_with_a_given_decoder():
    seen = {}

    def decoder(codes: torch.Tensor) -> torch.Tensor:
        seen["codes"] = codes
        return codes.float().repeat_interleave(2, 1).repeat_interleave(2, 2) / tiny_models.CHAMELEON_IMAGE_N

    bb = tiny_models.chameleon_backbone()
    result = decode(bb, "ar", PROMPTS, size=(8, 8))
    bb_with = type(bb)(bb.model, bb.tokenizer, bb.spec, image_decoder=decoder)
    images = bb_with.images(result.tokens, result.session)
    codes = seen["codes"]
    assert codes.shape == (2, 4, 4) and int(codes.min()) >= 0 and int(codes.max()) < tiny_models.CHAMELEON_IMAGE_N
    assert torch.equal(codes + tiny_models.CHAMELEON_IMAGE_LO, result.session.layout.grid(result.tokens))
    assert [im.size for im in images] == [(8, 8), (8, 8)] and images[0].mode == "L"


def test_reference_defaults_and_overrides():
    cham, emu = tiny_models.chameleon_backbone(), tiny_models.emu3_backbone()
    assert cham.default_sampling == SamplingConfig(temperature=1.0, top_k=20, cfg_scale=3.0)  # pardecode.json
    assert emu.default_sampling == SamplingConfig(temperature=1.0, top_k=2048, cfg_scale=3.0)
    emu2 = plugins().backbones.get("emu3").factory(str(tiny_models.emu3_dir()), top_k=7, cfg_scale=1.5)
    assert emu2.default_sampling == SamplingConfig(temperature=1.0, top_k=7, cfg_scale=1.5)
    # a negative prompt given at start replaces the reference one
    s = emu.start(["boot"], SamplingConfig(cfg_scale=3.0), size=(16, 16), negative_prompt="blurry")
    assert len(s.encoded.uncond[0]) < len(
        emu.start(["boot"], SamplingConfig(cfg_scale=3.0), size=(16, 16)).encoded.uncond[0]
    )
    # no guidance, no unconditional rows
    assert emu.start(["boot"], SamplingConfig(), size=(16, 16)).encoded.uncond is None


def test_fashion_checkpoint_layout_matches_its_training_sequences(tmp_path):
    """The default model's checkpoint format (written by the recipe) reads back with the same prefixes."""
    recipe = pytest.importorskip("pardecode.fashion.recipe")
    from pardecode.fashion import vocab as V
    from pardecode.fashion.tokenizer import PatchTokenizer

    config = recipe.RecipeConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=24, codebook_size=8)
    codebook = PatchTokenizer(torch.rand(8, 4, generator=torch.Generator().manual_seed(0)))
    recipe.write_model_dir(recipe.build_model(config), codebook, config, tmp_path)
    bb = plugins().backbones.get("fashion").factory(path=tmp_path)
    prompt = V.PROMPTS_BY_CLASS["Dress"][1]
    session = bb.start([prompt], SamplingConfig(cfg_scale=3.0))
    header = V.image_header(14, 14)
    assert session.encoded.cond == [V.prompt_ids(prompt) + [V.SEPARATOR_ID] + header]
    assert session.encoded.uncond == [[V.BOS_ID] + header]
    result = decode(bb, "sjd", [prompt], seed=0)
    assert bool(session.layout.is_valid(result.tokens).all())
    images = bb.images(result.tokens, result.session)
    assert images[0].size == (28, 28)


@pytest.mark.parametrize("family", FAMILIES)
def test_noise_conditioning_ships_with_the_checkpoint(family, tmp_path):
    """A checkpoint holding noise_conditioning.safetensors loads noise-ready and decodes like the original."""
    noisy = tiny_models.noisy_backbone(family)
    shutil.copytree(tiny_models.DIRS[family](), tmp_path / "ckpt")
    noisy.noise.save(tmp_path / "ckpt")
    loaded = plugins().backbones.get(family).factory(str(tmp_path / "ckpt"))
    assert loaded.noise_ready()
    size = tiny_models.SMALL_SIZE[family]
    a = decode(noisy, "sjd2", PROMPTS, seed=2, size=size)
    b = decode(loaded, "sjd2", PROMPTS, seed=2, size=size)
    assert torch.equal(a.tokens, b.tokens)


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_checkpoint_loads_and_decodes(family):
    bb = plugins().backbones.get(family).factory(str(tiny_models.DIRS[family]()), dtype="bfloat16", device="cpu")
    assert bb.body.get_input_embeddings().weight.dtype == torch.bfloat16
    result = decode(bb, "sjd", PROMPTS, size=tiny_models.SMALL_SIZE[family])
    assert bool(result.session.layout.is_valid(result.tokens).all())
    if family != "chameleon":
        assert len(bb.images(result.tokens, result.session)) == 2


def test_janus_save_pretrained_then_load_through_the_adapter(tmp_path):
    factory = plugins().backbones.get("janus").factory
    built = factory(config=tiny_models.janus_config(), tokenizer=tiny_models.janus_dir(), cfg_scale=4.0)
    built.model.save_pretrained(tmp_path)
    built.tokenizer.save_pretrained(tmp_path)
    loaded = factory(str(tmp_path), cfg_scale=4.0)
    assert loaded.default_sampling == SamplingConfig(temperature=1.0, top_k=0, cfg_scale=4.0)
    a = decode(built, "sjd", PROMPTS, seed=1)
    b = decode(loaded, "sjd", PROMPTS, seed=1)
    assert torch.equal(a.tokens, b.tokens)
    images = loaded.images(b.tokens, b.session)
    assert len(images) == 2 and images[0].size == (8, 8) and images[0].mode == "RGB"
