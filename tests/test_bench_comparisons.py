"""Pooled quality comparisons against AR, and the `methods` suite's coverage of the registry."""

import math

import numpy as np

from pardecode.benchmarks.comparisons import ALPHA, Comparison, frechet_difference, two_proportions
from pardecode.benchmarks.suite import load_suite
from pardecode.core.plugins import plugins


def test_methods_suite_runs_every_registered_strategy():
    suite = load_suite("methods")
    registered = set(plugins().strategies.names())
    assert registered - {"jacobi"} <= {s.strategy for s in suite.settings}  # jacobi is greedy-only
    assert {b.label for b in suite.backbones} == {"fashion", "fashion-sjd2"}


def test_two_proportions_against_a_hand_computed_z_test():
    diff, (lo, hi), p = two_proportions(80, 100, 60, 100)
    z = 0.2 / math.sqrt(0.7 * 0.3 * 0.02)
    assert math.isclose(diff, 0.2) and math.isclose(p, math.erfc(z / math.sqrt(2)))
    se = math.sqrt(0.8 * 0.2 / 100 + 0.6 * 0.4 / 100)
    assert math.isclose(lo, 0.2 - 1.96 * se) and math.isclose(hi, 0.2 + 1.96 * se)
    assert two_proportions(30, 60, 15, 30)[2] == 1.0


def test_frechet_difference_tells_a_shift_from_a_resample():
    rng = np.random.default_rng(0)
    reference = (np.zeros(3), np.eye(3))
    a, b = rng.normal(size=(120, 3)), rng.normal(size=(120, 3))
    diff, (lo, hi), p = frechet_difference(a, b, reference)
    assert p >= ALPHA and lo <= diff <= hi
    shifted = b + np.array([0.6, 0.0, 0.0])
    diff, (lo, hi), p = frechet_difference(shifted, a, reference)
    assert p < ALPHA and diff > 0 and lo > 0


def test_comparison_readings():
    c = Comparison(120, 120, -0.05, (-0.14, 0.04), 0.3, 12.0, (-20.0, 40.0), 0.4)
    assert c.verdict(True) == "matches AR"
    assert c.verdict(False).startswith("costs +0.050 agreement [-0.040, +0.140]")
    assert Comparison(120, 120, -0.2, (-0.3, -0.1), 0.001, 0.0, (0.0, 0.0), 1.0).verdict(True).startswith("DIFFERS")
