"""The default-model recipe: sequences, a tiny resumable run, and the shipped checkpoint's format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pardecode.core.errors import CheckpointError, ConfigError
from pardecode.fashion import CLASS_NAMES
from pardecode.fashion import recipe as R
from pardecode.fashion import vocab as V

SHIPPED = Path(__file__).resolve().parents[1] / "pardecode" / "fashion" / "assets" / "fashion-t2i"
META_KEYS = {
    "family",
    "bos_id",
    "separator_id",
    "start_of_image_id",
    "end_of_image_id",
    "end_of_line_id",
    "size_token_base",
    "tokens_per_grid_unit",
    "pixels_per_token",
    "image_token_range",
    "prompt_template",
    "default_size",
    "cfg_scale",
    "top_k",
    "image_decoder",
}
TINY = dict(
    steps=3,
    batch_size=4,
    hidden_size=16,
    num_layers=1,
    num_heads=2,
    intermediate_size=32,
    codebook_size=8,
    codebook_iters=2,
    limit=40,
    eval_limit=8,
    warmup_steps=1,
    checkpoint_every=2,
    time_budget_s=None,
)


def _fake_fashion(root: Path) -> Path:
    """Tiny IDX files so the recipe test neither needs nor reads the 60k-image split."""
    import gzip

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 8)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"\0\0\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in images.shape) + images.tobytes())
        with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\0\0\x08\x01" + n.to_bytes(4, "big") + labels.tobytes())
    return root


def test_config_errors_name_value():
    with pytest.raises(ConfigError, match="batch_size must be a positive int.*got 0"):
        R.RecipeConfig(batch_size=0)
    with pytest.raises(ConfigError, match=r"uncond_prob must be a number in \[0, 1\), got 1.5"):
        R.RecipeConfig(uncond_prob=1.5)
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        R.RecipeConfig(hidden_size=130, num_heads=4)


def test_tokenise_layout():
    codes = torch.randint(0, 8, (50, 14, 14), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(50) % 10
    seq, start = R.tokenise(codes, labels, 0.3, torch.Generator().manual_seed(1))
    span = V.image_span(codes)
    header = V.image_header(14, 14)
    assert (seq[:, 0] == V.BOS_ID).all()
    for i in range(50):
        s = int(start[i])
        assert torch.equal(seq[i, s : s + span.shape[1]], span[i])
        assert (seq[i, s + span.shape[1] :] == V.PAD_ID).all()
        assert seq[i, s - 3 : s].tolist() == header
        if s == 4:  # unconditional branch
            assert seq[i, :4].tolist() == [V.BOS_ID] + header
        else:
            assert seq[i, s - 4] == V.SEPARATOR_ID
            prompt_words = seq[i, 1 : s - 4]
            text = " ".join(V.word_list()[int(t) - V.WORD_LO] for t in prompt_words)
            assert V.class_of_prompt(text.split(":", 1)[1]) == int(labels[i])
    assert 0 < int((start == 4).sum()) < 50


@pytest.mark.slow
def test_tiny_run_extends_and_rejects_other_config(tmp_path):
    data_dir = _fake_fashion(tmp_path)
    out = tmp_path / "out"
    model_dir = R.train_default_model(out, R.RecipeConfig(**TINY), data_dir=data_dir, progress=False)
    state = torch.load(out / "checkpoint" / R.STATE_FILE, weights_only=False)
    assert state["step"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and np.isfinite(metrics["test_nll_per_image_token"])
    assert set(json.loads((model_dir / "pardecode.json").read_text())) == META_KEYS

    longer = R.RecipeConfig(**{**TINY, "steps": 5})
    R.train_default_model(out, longer, data_dir=data_dir, progress=False)
    assert torch.load(out / "checkpoint" / R.STATE_FILE, weights_only=False)["step"] == 5
    assert json.loads((out / "metrics.json").read_text())["steps"] == 5

    with pytest.raises(CheckpointError, match="lr"):
        R.train_default_model(out, R.RecipeConfig(**{**TINY, "lr": 0.5}), data_dir=data_dir, progress=False)


def test_interrupt_saves_checkpoint_and_rerun_continues(tmp_path, monkeypatch, interrupted_at):
    data_dir = _fake_fashion(tmp_path)
    real = R.image_span_loss
    monkeypatch.setattr(R, "image_span_loss", interrupted_at(real, 3))  # Ctrl-C at the third step
    cfg = R.RecipeConfig(**{**TINY, "checkpoint_every": 100})
    with pytest.raises(KeyboardInterrupt):
        R.train_default_model(tmp_path / "out", cfg, data_dir=data_dir, progress=False)
    assert torch.load(tmp_path / "out" / "checkpoint" / R.STATE_FILE, weights_only=False)["step"] == 2

    rerun: list[int] = []

    def counting(*args, **kwargs):
        rerun.extend([1] if kwargs.get("reduction", "mean") == "mean" else [])
        return real(*args, **kwargs)

    monkeypatch.setattr(R, "image_span_loss", counting)
    R.train_default_model(tmp_path / "out", cfg, data_dir=data_dir, progress=False)
    assert len(rerun) == 1  # the rerun trained only the one remaining step
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["steps"] == 3


@pytest.mark.skipif(not (SHIPPED / "pardecode.json").exists(), reason="shipped weights not built")
def test_shipped_checkpoint_is_consistent():
    from transformers import AutoTokenizer, ChameleonForConditionalGeneration
    from transformers.models.chameleon.modeling_chameleon import ChameleonImageVocabularyMapping

    meta = json.loads((SHIPPED / "pardecode.json").read_text())
    assert set(meta) == META_KEYS and meta["family"] == "chameleon"
    model = ChameleonForConditionalGeneration.from_pretrained(SHIPPED)
    cfg = model.config
    lo, hi = meta["image_token_range"]
    ids = [meta[k] for k in ("bos_id", "separator_id", "start_of_image_id", "end_of_image_id", "end_of_line_id")]
    assert all(0 <= i < lo for i in ids) and hi == cfg.vocab_size
    h = meta["default_size"][1] // meta["pixels_per_token"] // meta["tokens_per_grid_unit"]
    assert lo > meta["size_token_base"] + h
    mapping = ChameleonImageVocabularyMapping(cfg.vocabulary_map)
    assert mapping.image_tokens == list(range(lo, hi))
    assert mapping.bpe2img[lo + 12] == 12 and mapping.image_token_id is not None
    from pardecode.fashion.tokenizer import PatchTokenizer

    assert PatchTokenizer.load(SHIPPED / meta["image_decoder"]).size == hi - lo
    tok = AutoTokenizer.from_pretrained(SHIPPED)
    text = meta["prompt_template"].format(width=28, height=28, prompt="a sneaker")
    assert tok(text)["input_ids"] == V.prompt_ids("a sneaker")
    assert sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file()) < 20e6
    with torch.no_grad():
        logits = model.lm_head(model.model(input_ids=torch.tensor([V.prompt_ids("a bag")])).last_hidden_state)
    assert torch.isfinite(logits).all() and logits.shape[-1] == cfg.vocab_size
    assert len(CLASS_NAMES) == len(V.PROMPTS_BY_CLASS)
