"""SJD2: exact sequence distribution on a noise-aware toy, the noise module's clean path, errors.

Statistical test as in test_sequence_distribution: 20,000 rows per configuration, Pearson
chi-square with bins of expected count < 5 pooled, rejecting at p-value < 1e-3 (6 configurations:
a correct sampler fails a run with probability below 0.6%; seeds fixed).
"""

import pytest
import torch
from test_sequence_distribution import ALPHA, empirical_counts
from test_verify_properties import pooled_chisquare

from pardecode import ConfigError, SamplingConfig, decode, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.backbone import NoisyInputs
from pardecode.core.noise import NoiseConditioning, NoiseSchedule, ddim_step, vp_coefficients


@pytest.mark.parametrize(
    "options,sampling,grid",
    [
        ({"window": 2, "steps": 1}, SamplingConfig(), None),
        ({"window": 4, "steps": 3}, SamplingConfig(temperature=0.8, top_k=2), None),
        ({"window": 6, "steps": 2, "sigma_max": 3.0}, SamplingConfig(cfg_scale=2.0), None),
        ({"window": 3, "steps": 4}, SamplingConfig(top_p=0.8), None),
        ({"window": 5, "steps": 2}, SamplingConfig(), (2, 2)),
        ({"window": 4, "steps": 2, "coupling": "independent"}, SamplingConfig(), None),
    ],
)
def test_sjd2_sequences_match_exact_ar(options, sampling, grid):
    kw = {"grid": grid, "vocab_size": 4} if grid else {"length": 4, "vocab_size": 3}
    backbone = ToyBackbone(sharpness=1.0, seed=3, noise_dim=4, **kw)
    counts, probs, result = empirical_counts(backbone, get_strategy("sjd2", **options), sampling)
    assert backbone.layout().is_valid(result.tokens).all()
    assert pooled_chisquare(counts, probs) > ALPHA


def test_sjd2_noise_changes_what_the_model_sees():
    """The noisy slots are really fed: acceptance differs from feeding only clean drafts."""
    backbone = ToyBackbone(vocab_size=6, length=60, noise_dim=8, seed=2)
    a = decode(backbone, get_strategy("sjd2", window=8, steps=4), ["ab"] * 16, seed=0)
    b = decode(backbone, get_strategy("sjd", window=8), ["ab"] * 16, seed=0)
    assert a.trace.forward_passes != b.trace.forward_passes or not torch.equal(a.tokens, b.tokens)


@pytest.mark.parametrize("window,steps", [(4, 2), (9, 5), (16, 8)])
def test_sjd2_greedy_equals_ar_and_layout_is_valid(window, steps):
    backbone = ToyBackbone(vocab_size=7, grid=(4, 6), noise_dim=6, seed=window, sharpness=3.0)
    greedy = SamplingConfig(temperature=0)
    ar = decode(backbone, "ar", ["ab", "cde"], sampling=greedy)
    sjd2 = decode(backbone, get_strategy("sjd2", window=window, steps=steps), ["ab", "cde"], sampling=greedy)
    assert torch.equal(ar.tokens, sjd2.tokens)
    committed = sjd2.trace.committed
    assert committed.max() <= window + 1 and sjd2.session.calls == sjd2.forward_passes


def test_sjd2_refuses_a_backbone_without_noise_conditioning():
    with pytest.raises(ConfigError, match=r"backbone 'toy' has no noise conditioning.*pardecode finetune-sjd2"):
        decode(ToyBackbone(), "sjd2", ["a"])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"window": -1}, "window must be an integer >= 1"),
        ({"sigma_min": 0.0}, "sigma_min must be a number > 0"),
        ({"sigma_min": 5.0, "sigma_max": 1.0}, r"sigma_min \(5.0\) must be below sigma_max \(1.0\)"),
    ],
)
def test_sjd2_options_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        get_strategy("sjd2", **kwargs)


def test_schedule_rises_from_zero_to_sigma_max():
    sig = NoiseSchedule(steps=6, sigma_min=0.05, sigma_max=20.0).sigmas()
    assert sig[0] == 0 and torch.isclose(sig[1], torch.tensor(0.05)) and torch.isclose(sig[-1], torch.tensor(20.0))
    assert (sig.diff() > 0).all()


def test_ddim_step_reaches_x0_at_level_zero_and_keeps_noise_direction():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    s_hi, s_lo = torch.full((5,), 4.0), torch.full((5,), 1.0)
    a, s = vp_coefficients(s_hi.unsqueeze(-1))
    z = a * x0 + s * eps
    torch.testing.assert_close(ddim_step(z, x0, s_hi, torch.zeros(5)), x0)
    a2, s2 = vp_coefficients(s_lo.unsqueeze(-1))
    torch.testing.assert_close(ddim_step(z, x0, s_hi, s_lo), a2 * x0 + s2 * eps)  # same eps, lower level


def test_noise_level_zero_is_exactly_the_clean_path():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(50, 16, generator=g) * 3 + 1
    module = NoiseConditioning.for_embeddings(table)
    torch.nn.init.normal_(module.time[-1].weight)  # a trained-looking module, not the zero init
    clean = table[torch.randint(50, (2, 7), generator=g)]
    noisy = NoisyInputs(embeds=torch.randn(2, 7, 16, generator=g), level=torch.zeros(2, 7))
    assert torch.equal(module.inputs_embeds(clean, noisy), clean)
    level = torch.zeros(2, 7)
    level[:, 3:] = 2.0
    mixed = module.inputs_embeds(clean, NoisyInputs(noisy.embeds, level))
    assert torch.equal(mixed[:, :3], clean[:, :3]) and not torch.allclose(mixed[:, 3:], clean[:, 3:])
    torch.testing.assert_close(module.normalize(table).mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(module.denormalize(module.normalize(table)), table, atol=1e-5, rtol=0)


def test_noise_conditioning_round_trips_through_a_directory(tmp_path):
    module = NoiseConditioning.for_embeddings(torch.randn(20, 8))
    torch.nn.init.normal_(module.time[-1].weight)
    module.save(tmp_path)
    loaded = NoiseConditioning.load(tmp_path)
    sigma = torch.tensor([0.5, 3.0])
    torch.testing.assert_close(loaded.encode_level(sigma), module.encode_level(sigma))
    assert NoiseConditioning.load(tmp_path / "missing") is None
