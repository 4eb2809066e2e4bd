"""Decodes on the `device` fixture's device ($PARDECODE_TEST_DEVICE, default the CPU).

On the CPU these repeat, briefly, what other files check at length; their point is a run with
PARDECODE_TEST_DEVICE=cuda (`perf/gpu_check.py` does it), where every tensor the framework, the
strategies, the toy references and the transformers adapter create must land on the GPU. Nothing
here compares against stored CPU tokens: a CUDA generator draws other numbers than a CPU one, so the
checks are greedy equality with AR (no randomness), layout validity and goodness of fit.
"""

import pytest
import torch

import pardecode
from pardecode.core.config import SamplingConfig
from pardecode.testing import check_exact, check_greedy
from pardecode.testing.references import free_sequence, greedy_references, grid_with_end_of_line

# a wide setting of each built-in that runs on the toy grids (single-window and placed-slot ones)
GREEDY = [
    ("sjd", {"window": 6}),
    ("sjd_pac", {"window": 6}),
    ("sjd_pac_tree", {"window": 6, "branches": 4, "depth": 3}),
    ("sjd2", {"window": 6, "steps": 3}),
    ("zipar", {"window": 64}),
    ("pjd", {"rows": 1, "window": 4}),
    ("jacobi", {"window": 4}),
]
# exact samplers certified on the device at a small sample count (the CPU runs: tests/test_certify.py)
EXACT = [("sjd", {"window": 6}), ("sjd_pac_tree", {"window": 6, "branches": 4, "depth": 3}), ("pjd", {"rows": 1})]
SAMPLES = 2000
# the tiny random Lumina-mGPT-style model (tests/tiny_models.py): 4 x 4 image tokens
CHAMELEON_STRATEGIES = [("ar", {}), ("sjd", {"window": 4}), ("sjd_pac", {"window": 4}), ("zipar", {"window": 4})]


@pytest.mark.parametrize("name,options", GREEDY, ids=[n for n, _ in GREEDY])
def test_greedy_decodes_on_the_device_equal_greedy_ar(device, name, options):
    refs = [ref.on(device) for ref in greedy_references()]
    report = check_greedy(pardecode.get_strategy(name, **options), references=refs)
    assert report.checks and not report.deviation_detected, report.table()


@pytest.mark.parametrize("name,options", EXACT, ids=[n for n, _ in EXACT])
def test_exact_samplers_on_the_device_fit_the_exact_distribution(device, name, options):
    refs = [free_sequence().on(device), grid_with_end_of_line().on(device)]
    report = check_exact(pardecode.get_strategy(name, **options), samples=SAMPLES, references=refs, greedy=False)
    assert report.tests and not report.deviation_detected, report.table()


def test_a_toy_decode_stays_on_the_device(device):
    ref = grid_with_end_of_line().on(device)
    result = pardecode.decode(ref.backbone, pardecode.get_strategy("sjd", window=3), ["ab", "b"], seed=0)
    assert result.tokens.device.type == device.type
    assert bool(result.session.layout.is_valid(result.tokens).all())


@pytest.fixture(scope="module")
def chameleon(device):
    from tiny_models import chameleon_dir

    from pardecode.adapters.chameleon import ChameleonBackbone

    return ChameleonBackbone.from_pretrained(chameleon_dir(), dtype="float32", device=device)


@pytest.mark.parametrize("name,options", CHAMELEON_STRATEGIES, ids=[n for n, _ in CHAMELEON_STRATEGIES])
def test_tiny_chameleon_decodes_on_the_device(chameleon, device, name, options):
    """Sampled with guidance (the model's reference setting): valid images, on the device, reproducible;
    greedily: AR's tokens."""
    strategy = pardecode.get_strategy(name, **options)
    prompts = ["a red cube", "two cats"]
    result = pardecode.decode(chameleon, strategy, prompts, seed=3, size=(8, 8))
    assert result.tokens.device.type == device.type
    assert bool(result.session.layout.is_valid(result.tokens).all())
    again = pardecode.decode(chameleon, pardecode.get_strategy(name, **options), prompts, seed=3, size=(8, 8))
    assert torch.equal(result.tokens, again.tokens)
    greedy = SamplingConfig(temperature=0.0, cfg_scale=3.0)
    ar = pardecode.decode(chameleon, "ar", prompts, sampling=greedy, size=(8, 8)).tokens
    ours = pardecode.decode(chameleon, pardecode.get_strategy(name, **options), prompts, sampling=greedy, size=(8, 8))
    assert torch.equal(ours.tokens, ar)
