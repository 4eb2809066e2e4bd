"""Next-clean-token fine-tuning on tiny Chameleon and Emu3 models: loss falls, output decodes with sjd2."""

import json

import pytest
import torch
from tiny_models import DIRS, SMALL_SIZE

from pardecode import SamplingConfig, decode, get_strategy
from pardecode.finetune.data import self_spans, training_set
from pardecode.finetune.noising import SegmentNoise
from pardecode.finetune.sjd2 import FinetuneConfig, finetune_sjd2, span_nll


def _fresh(family):
    from pardecode.api import get_backbone

    return get_backbone(family, path=DIRS[family]())


@pytest.mark.parametrize("family", ["chameleon", "emu3"])
def test_finetune_lowers_next_clean_token_loss_and_decodes(family, tmp_path):
    backbone = _fresh(family)
    size = SMALL_SIZE[family]
    prompts, spans = self_spans(backbone, ["a cat", "a dog"], count=8, seed=0, size=size)
    train = training_set(backbone, prompts, spans, size=size)
    config = FinetuneConfig(steps=12, batch_size=8, lr=3e-3, warmup=3, noise=SegmentNoise(segment_min=2, segment_max=6))
    g = torch.Generator().manual_seed(123)
    sigma = config.noise.levels(train.noisable, len(train), g)
    from pardecode.finetune.sjd2 import attach_noise

    noise = attach_noise(backbone)
    with torch.no_grad():
        before = float(span_nll(backbone, noise, train, sigma, torch.Generator().manual_seed(5)))
    metrics = finetune_sjd2(backbone, train, tmp_path, config, held_out=train, progress=False)
    with torch.no_grad():
        after = float(span_nll(backbone, noise, train, sigma, torch.Generator().manual_seed(5)))
    assert after < before
    assert metrics["steps"] == 12 and json.loads((tmp_path / "metrics.json").read_text())["steps"] == 12

    from pardecode.api import get_backbone

    tuned = get_backbone(family, path=tmp_path / "model")
    assert tuned.noise_ready()
    result = decode(tuned, get_strategy("sjd2", window=6, steps=3), ["a cat"], seed=0, size=size)
    assert result.session.layout.is_valid(result.tokens).all()
    greedy = SamplingConfig(temperature=0)
    ar = decode(tuned, "ar", ["a dog"], sampling=greedy, size=size)
    sj = decode(tuned, get_strategy("sjd2", window=6, steps=3), ["a dog"], sampling=greedy, size=size)
    assert torch.equal(ar.tokens, sj.tokens)


def test_finetune_resumes_from_its_state(tmp_path):
    backbone = _fresh("chameleon")
    size = SMALL_SIZE["chameleon"]
    prompts, spans = self_spans(backbone, ["a cat"], count=8, seed=1, size=size)
    train = training_set(backbone, prompts, spans, size=size)
    first = finetune_sjd2(
        backbone, train, tmp_path, FinetuneConfig(steps=4, batch_size=4, checkpoint_every=2), progress=False
    )
    again = finetune_sjd2(
        _fresh("chameleon"), train, tmp_path, FinetuneConfig(steps=6, batch_size=4, checkpoint_every=2), progress=False
    )
    assert first["steps"] == 4 and again["steps"] == 6
    with pytest.raises(Exception, match="another recipe"):
        finetune_sjd2(_fresh("chameleon"), train, tmp_path, FinetuneConfig(steps=8, batch_size=2), progress=False)


def test_segment_noise_levels():
    noise = SegmentNoise(segment_min=3, segment_max=5, clean_ratio=0.0, rising_fraction=0.0)
    noisable = torch.tensor([False] * 4 + [True] * 30)
    sigma = noise.levels(noisable, 50, torch.Generator().manual_seed(0))
    assert (sigma[:, :4] == 0).all() and (sigma[:, 4:] > 0).all()
    assert sigma[:, 4:].min() >= 0.1 - 1e-6 and sigma.max() <= 10 + 1e-4
    rising = SegmentNoise(rising_fraction=1.0).levels(noisable, 50, torch.Generator().manual_seed(0))
    assert (rising[:, 5:].diff(dim=1)[:, :] >= -1e-6).logical_or(rising[:, 6:] == 0).all()
    with pytest.raises(Exception, match="segment_min"):
        SegmentNoise(segment_min=9, segment_max=3)
