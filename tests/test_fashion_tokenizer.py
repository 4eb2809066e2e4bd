"""Patch codebook tokenizer and the Fashion-MNIST vocabulary/prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pardecode.core.errors import CheckpointError, ConfigError
from pardecode.fashion import CLASS_NAMES
from pardecode.fashion import vocab as V
from pardecode.fashion.tokenizer import PatchTokenizer, from_patches, to_patches

SHIPPED = Path(__file__).resolve().parents[1] / "pardecode" / "fashion" / "assets" / "fashion-t2i"
SHIPPED_MSE_BOUND = 0.0015  # measured 0.00123 (PSNR 29.1 dB) for the 256-entry codebook


def _codebook(k: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(k, 4, generator=torch.Generator().manual_seed(seed))


def test_patches_round_trip():
    x = torch.rand(3, 28, 28)
    p = to_patches(x)
    assert p.shape == (3, 14, 14, 4)
    assert torch.equal(p[0, 0, 0], torch.stack([x[0, 0, 0], x[0, 0, 1], x[0, 1, 0], x[0, 1, 1]]))
    assert torch.equal(from_patches(p), x)


def test_encode_decode_exact_on_centroids():
    tok = PatchTokenizer(_codebook())
    ids = torch.randint(0, 16, (5, 14, 14), generator=torch.Generator().manual_seed(1))
    images = tok.decode(ids)
    assert images.shape == (5, 28, 28) and images.dtype == torch.float32
    assert torch.equal(tok.encode(images), ids)
    assert torch.equal(tok.decode(tok.encode(images)), images)


def test_uint8_and_float_inputs_agree():
    tok = PatchTokenizer(_codebook())
    u8 = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    ids = tok.encode(u8)
    assert ids.shape == (2, 14, 14) and ids.dtype == torch.long
    assert torch.equal(ids, tok.encode(torch.tensor(u8).float() / 255))


def test_fit_is_seeded_and_recovers_clusters():
    rng = np.random.default_rng(0)
    levels = np.array([0, 85, 170, 255], dtype=np.uint8)
    images = levels[rng.integers(0, 4, (40, 14, 14))].repeat(2, 1).repeat(2, 2)  # flat 2x2 patches
    a = PatchTokenizer.fit(images, size=4, iters=10, seed=3)
    b = PatchTokenizer.fit(images, size=4, iters=10, seed=3)
    assert torch.equal(a.codebook, b.codebook)
    assert a.reconstruction_error(images)["mse"] < 1e-10


def test_save_load(tmp_path):
    tok = PatchTokenizer(_codebook())
    tok.save(tmp_path / "cb.safetensors")
    assert torch.equal(PatchTokenizer.load(tmp_path / "cb.safetensors").codebook, tok.codebook)
    with pytest.raises(CheckpointError, match="does not exist"):
        PatchTokenizer.load(tmp_path / "missing.safetensors")


def test_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match=r"float\[K, 4\]"):
        PatchTokenizer(torch.zeros(8, 3))
    tok = PatchTokenizer(_codebook())
    with pytest.raises(ConfigError, match=r"\[0, 16\).*\[16, 16\]"):
        tok.decode(torch.full((1, 2, 2), 16))
    with pytest.raises(ConfigError, match="multiples of 2"):
        tok.encode(np.zeros((1, 27, 28), np.uint8))


def test_shipped_codebook_reconstruction_bound():
    from pardecode.fashion import data

    path = SHIPPED / "codebook.safetensors"
    if not path.exists():
        pytest.skip("shipped weights not built")
    try:
        images, _ = data.load("test")
    except ConfigError as exc:
        pytest.skip(str(exc))
    err = PatchTokenizer.load(path).reconstruction_error(images[:2000])
    assert err["mse"] < SHIPPED_MSE_BOUND and err["psnr_db"] > 28.0


def test_every_prompt_maps_back_to_its_class():
    for c, name in enumerate(CLASS_NAMES):
        assert V.PROMPTS_BY_CLASS[name]
        for prompt in V.PROMPTS_BY_CLASS[name]:
            assert prompt == prompt.lower()
            assert V.class_of_prompt(prompt) == c, prompt
            assert V.UNK_ID not in V.prompt_ids(prompt)
    assert V.class_of_prompt("A photo of a T-shirt") == 0
    assert V.class_of_prompt("an ankle boot") == 9
    assert V.class_of_prompt("a spaceship") is None


def test_vocabulary_layout():
    vocab = V.vocabulary(256)
    assert len(vocab) == V.IMAGE_TOKEN_LO + 256 == len(set(vocab.values()))
    assert vocab["IMGIMGAZ"] == V.IMAGE_TOKEN_LO and vocab["IMGIMGBCZ"] == V.IMAGE_TOKEN_LO + 12
    assert vocab["<image>"] == V.IMAGE_PLACEHOLDER_ID
    assert max(v for k, v in vocab.items() if not k.startswith("IMGIMG")) < V.IMAGE_TOKEN_LO
    span = V.image_span(torch.zeros(2, 14, 14, dtype=torch.long))
    assert span.shape == (2, 14 * 15 + 1) and span[0, 14] == V.END_OF_LINE_ID and span[0, -1] == V.END_OF_IMAGE_ID


def test_text_tokenizer_matches_prompt_ids(tmp_path):
    from transformers import AutoTokenizer

    V.save_text_tokenizer(tmp_path, 16)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = V.PROMPT_TEMPLATE.format(width=28, height=28, prompt="a picture of a t-shirt/top")
    assert tok(text)["input_ids"] == V.prompt_ids("a picture of a t-shirt/top")
    assert tok(text, add_special_tokens=False)["input_ids"] == V.prompt_ids("a picture of a t-shirt/top")[1:]
