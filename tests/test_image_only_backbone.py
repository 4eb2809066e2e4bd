"""A plugin-style backbone with an image-only span: a tiny transformers Llama as a class-conditional
8x8 image-token generator (LlamaGen-style: no end-of-line, no end token)."""

import pytest
import torch

from pardecode import SamplingConfig, decode
from pardecode.adapters import hf
from pardecode.core.errors import ConfigError
from pardecode.core.layout import ImageGridLayout
from pardecode.finetune.data import training_set

CLASSES = ("cat", "dog", "car")
BOS, NULL, IMAGE_LO, VOCAB = 0, 4, 8, 24  # classes 1..3, the guidance class 4, 16 image tokens 8..23


class ClassConditional(hf.HFBackbone):
    name = "llama-c2i"

    def __init__(self, model):
        super().__init__(
            body=model.model,
            head=model.lm_head,
            tokenizer=None,
            context=model.config.max_position_embeddings,
            pad_id=BOS,
        )
        self.model = model
        self.image_tokens = torch.arange(IMAGE_LO, VOCAB)

    def encode(self, prompts, sampling):
        unknown = [p for p in prompts if p not in CLASSES]
        if unknown:
            raise ConfigError(f"unknown class {unknown[0]!r}; classes: {', '.join(CLASSES)}")
        cond = [[BOS, 1 + CLASSES.index(p)] for p in prompts]
        uncond = [[BOS, NULL]] * len(prompts) if sampling.uses_cfg else None
        return hf.Encoded(cond, uncond, ImageGridLayout(8, 8, self.image_tokens, VOCAB))


@pytest.fixture(scope="module")
def backbone():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=96,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).eval()
    return ClassConditional(model)


@pytest.mark.parametrize(
    "strategy,options",
    [
        ("ar", {}),
        ("sjd", {"window": 8}),
        ("sjd_above", {"window": 12}),
        ("zipar", {"window": 2}),
        ("pjd", {}),
        ("pjd", {"mask": "causal", "window": 3}),
    ],
)
def test_every_strategy_decodes_the_image_only_grid(backbone, strategy, options):
    result = decode(
        backbone, strategy, ["cat", "car"], sampling=SamplingConfig(cfg_scale=2.0), seed=0, strategy_options=options
    )
    assert result.tokens.shape == (2, 64)
    assert bool(result.session.layout.is_valid(result.tokens).all())
    assert bool(((result.tokens >= IMAGE_LO) & (result.tokens < VOCAB)).all())


@pytest.mark.parametrize(
    "strategy,exact,lossy",
    [
        ("zipar", {"window": 8}, {"window": 2}),
        ("pjd", {"rows": 1, "window": 4}, {"window": 4, "mask": "causal"}),
    ],
)
def test_row_parallel_strategies_on_the_image_only_grid(backbone, strategy, exact, lossy):
    """Rows start without an end-of-line: greedy at the exact knob is greedy AR, the lossy knob
    saves passes (64 for AR on this 8x8 grid)."""
    greedy = SamplingConfig(temperature=0, cfg_scale=2.0)
    ar = decode(backbone, "ar", ["dog", "cat"], sampling=greedy)
    same = decode(backbone, strategy, ["dog", "cat"], sampling=greedy, strategy_options=exact)
    assert torch.equal(ar.tokens, same.tokens) and same.forward_passes <= ar.forward_passes == 64
    fast = decode(
        backbone, strategy, ["dog", "cat"], sampling=SamplingConfig(cfg_scale=2.0), seed=2, strategy_options=lossy
    )
    assert bool(fast.session.layout.is_valid(fast.tokens).all()) and fast.forward_passes < 32


def test_greedy_sjd_above_is_greedy_ar(backbone):
    greedy = SamplingConfig(temperature=0)
    ar = decode(backbone, "ar", ["dog", "cat"], sampling=greedy)
    above = decode(backbone, "sjd_above", ["dog", "cat"], sampling=greedy, strategy_options={"window": 10})
    assert torch.equal(ar.tokens, above.tokens)


def test_finetune_data_marks_every_cell_noisable(backbone):
    spans = torch.randint(IMAGE_LO, VOCAB, (4, 64), generator=torch.Generator().manual_seed(0))
    data = training_set(backbone, ["cat", "dog", "car", "cat"], spans)
    assert data.ids.shape == (4, 2 + 64) and bool(data.noisable[2:].all()) and not data.noisable[:2].any()
