"""The quality evaluator: Fréchet distance maths, the shipped classifier, prompt agreement, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pardecode.core.errors import CheckpointError, ConfigError
from pardecode.fashion import data
from pardecode.fashion.evaluator import (
    DEFAULT_WEIGHTS,
    ClassifierConfig,
    Evaluator,
    FashionClassifier,
    QualityReport,
    TrainConfig,
    as_images,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    load_classifier,
    save_classifier,
)

# The shipped classifier scores ~0.91 on the full test set; 0.85 on 500 images leaves ~5 binomial
# standard errors (sqrt(0.09 * 0.91 / 500) = 0.013) of room while still failing any broken model.
ACCURACY_BOUND = 0.85


def _has_data() -> bool:
    try:
        data.load("test")
    except ConfigError:
        return False
    return True


needs_data = pytest.mark.skipif(
    not _has_data(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator.load()


@pytest.fixture(scope="module")
def test_subset() -> tuple[np.ndarray, np.ndarray]:
    images, labels = data.load("test")
    return images[:500], labels[:500].astype(np.int64)


# ------------------------------------------------------------------------------ Fréchet distance


def _features(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mixing


def test_frechet_zero_for_identical_sets():
    x = _features(400, 16, 0)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9 * float(x.var(0).sum()))


def test_frechet_symmetric():
    a, b = _features(300, 12, 1), _features(500, 12, 2) * 0.7 + 0.3
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_shift_adds_squared_norm_and_grows():
    a = _features(300, 8, 3)
    shift = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64)
    distances = [frechet_distance(a, a + t * shift) for t in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[0] < distances[1]
    # same covariance, so the distance is exactly the squared mean shift
    assert distances[-1] == pytest.approx(float((2.0 * shift).square().sum()), rel=1e-9)


def test_frechet_matches_1d_closed_form():
    """For N(m1, s1^2), N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2, up to sampling error."""
    n, (m1, s1), (m2, s2) = 200_000, (1.0, 2.0), (-0.5, 0.5)
    rng = np.random.default_rng(0)
    a, b = rng.normal(m1, s1, (n, 1)), rng.normal(m2, s2, (n, 1))
    expected = (m1 - m2) ** 2 + (s1 - s2) ** 2
    # delta method: sd of the mean difference sqrt((s1^2 + s2^2) / n), of the sd difference
    # sqrt((s1^2 + s2^2) / 2n); each enters through the derivative 2 * difference
    se = math.hypot(
        2 * abs(m1 - m2) * math.sqrt((s1**2 + s2**2) / n), 2 * abs(s1 - s2) * math.sqrt((s1**2 + s2**2) / (2 * n))
    )
    assert abs(frechet_distance(a, b) - expected) < 5 * se  # 5 * se = 0.036 here


def test_frechet_from_stats_exact_for_commuting_covariances():
    var_a, var_b = np.array([4.0, 1.0, 0.25]), np.array([1.0, 1.0, 9.0])
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = ((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    got = frechet_distance_from_stats(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    mean_a, cov_a = gaussian_stats(_features(200, 10, 4))
    mean_b, cov_b = gaussian_stats(_features(150, 10, 5))
    root = linalg.sqrtm(cov_a @ cov_b)
    expected = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root).real
    assert frechet_distance_from_stats(mean_a, cov_a, mean_b, cov_b) == pytest.approx(expected, rel=1e-7)


def test_frechet_handles_singular_covariance():
    """Fewer samples than dimensions (rank-deficient covariance) still gives a finite distance >= 0."""
    a, b = _features(20, 64, 6), _features(30, 64, 7)
    value = frechet_distance(a, b)
    assert math.isfinite(value) and value > 0


def test_frechet_rejects_bad_features():
    with pytest.raises(ConfigError, match="share their dimension"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ConfigError, match="N >= 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ConfigError, match="NaN"):
        frechet_distance(torch.full((5, 3), float("nan")), torch.zeros(5, 3))


# ------------------------------------------------------------------------------------ inputs


def test_as_images_accepts_documented_forms():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    reference = as_images(raw)
    assert reference.shape == (3, 1, 28, 28) and reference.dtype == torch.float32
    assert torch.equal(as_images(torch.from_numpy(raw).unsqueeze(1)), reference)
    assert torch.allclose(as_images(raw.astype(np.float64) / 255), reference)


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(4, 32, 32), r"shape \[N, 28, 28\]"),
        (torch.rand(4, 3, 28, 28), r"shape \[N, 28, 28\]"),
        (torch.rand(28, 28), r"shape \[N, 28, 28\]"),
        (torch.rand(4, 28, 28) * 255, r"\[0, 1\].*divide by 255"),
        (torch.rand(4, 28, 28) - 0.5, r"\[0, 1\]"),
        (torch.full((2, 28, 28), float("nan")), "NaN"),
        (torch.randint(0, 256, (4, 28, 28)), "uint8"),
        (np.zeros((4, 28, 28), dtype=np.int32), "uint8"),
        ([[0.0] * 28] * 28, "torch.Tensor or numpy.ndarray"),
    ],
)
def test_bad_images_raise_clear_errors(images, match):
    with pytest.raises(ConfigError, match=match):
        as_images(images)


def test_configs_validate_on_construction():
    with pytest.raises(ConfigError, match="channels"):
        ClassifierConfig(channels=(0, 8))
    with pytest.raises(ConfigError, match="feature_dim"):
        ClassifierConfig(feature_dim=1)
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="max_shift"):
        TrainConfig(max_shift=20)


def test_save_load_roundtrip_and_bad_checkpoints(tmp_path):
    model = FashionClassifier(ClassifierConfig(channels=(2, 3), feature_dim=4))
    path = tmp_path / "tiny.safetensors"
    save_classifier(model, path, {"note": "untrained"})
    loaded, metadata = load_classifier(path)
    assert metadata["config"] == model.config and metadata["metrics"] == {"note": "untrained"}
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(loaded(x), model.eval()(x))
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_classifier(tmp_path / "junk.safetensors")


# --------------------------------------------------------------------------- shipped classifier


def test_shipped_weights_are_tiny():
    assert DEFAULT_WEIGHTS.stat().st_size < 1_000_000


@needs_data
def test_shipped_classifier_accuracy(evaluator, test_subset):
    images, labels = test_subset
    predicted = evaluator.predict(images)
    assert predicted.dtype == torch.long and predicted.shape == (500,)
    assert float((predicted.numpy() == labels).mean()) > ACCURACY_BOUND
    assert evaluator.features(images[:7]).shape == (7, 64)


@needs_data
def test_prompt_agreement_true_vs_shuffled_labels(evaluator, test_subset):
    images, labels = test_subset
    assert evaluator.prompt_agreement(images, labels) > ACCURACY_BOUND
    shuffled = np.random.default_rng(0).permutation(labels)
    # chance agreement with balanced classes is ~0.1; binomial sd at n=500 is 0.013
    assert abs(evaluator.prompt_agreement(images, shuffled) - 0.1) < 0.05


@needs_data
def test_prompt_agreement_rejects_bad_classes(evaluator, test_subset):
    images, labels = test_subset
    with pytest.raises(ConfigError, match=r"shape \[500\]"):
        evaluator.prompt_agreement(images, labels[:10])
    with pytest.raises(ConfigError, match=r"\[0, 10\)"):
        evaluator.prompt_agreement(images, labels + 5)
    with pytest.raises(ConfigError, match="integers"):
        evaluator.prompt_agreement(images, labels.astype(np.float32))
    with pytest.raises(ConfigError, match="integers"):
        evaluator.prompt_agreement(images[:3], [1, None, 2])


@needs_data
def test_evaluate_real_beats_noise(evaluator, test_subset):
    images, labels = test_subset
    real = evaluator.evaluate(images, labels)
    assert isinstance(real, QualityReport) and real.n_images == 500 and real.n_reference == 10_000
    noise = evaluator.evaluate(torch.rand(500, 28, 28, generator=torch.Generator().manual_seed(0)), labels)
    assert real.prompt_agreement > ACCURACY_BOUND and noise.prompt_agreement < 0.5
    assert noise.frechet_distance > 10 * real.frechet_distance
    # the test-set features are computed once and cached
    assert evaluator.reference_features("test")[0] is evaluator.reference_features("test")[0]
    with pytest.raises(ConfigError, match="reference must be one of"):
        evaluator.evaluate(images, labels, reference="val")


@needs_data
def test_reference_spread(evaluator):
    spread = evaluator.reference_spread(80, repeats=4, seed=1)
    assert spread.repeats == 4 and len(spread.frechet_distances) == 4 and spread.n_reference == 9_920
    assert all(d > 0 for d in spread.frechet_distances) and spread.agreement_mean > ACCURACY_BOUND
    with pytest.raises(ConfigError, match="disjoint"):
        evaluator.reference_spread(5000, repeats=3)
