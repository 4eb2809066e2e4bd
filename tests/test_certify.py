"""Every built-in certified against its claim, lossy settings and negative controls flagged.

Each certification is `pardecode.testing.check_exact` at SAMPLES rows per batched run (fewer than
the default 20,000, to keep this file near a minute): its large-batch tests then detect any
deviation of total variation 0.057 to 0.19 with probability 0.9, whatever its shape (each report
states its tests' bounds), and the negative controls were measured to be detected in at least 9 of
10 certifications from total variation 0.06 on (docs/certify.md). Seeds are fixed, so every run is
the same; each certification's family-wise false-alarm rate is 1e-3 (simulated p-values, Holm), so
a correct build would fail one of the 25 expected-to-pass certifications here, over reseeding, with
probability below 2.5%.
"""

import pytest

from pardecode.core.plugins import plugins
from pardecode.testing import check_exact, check_greedy, free_sequence, image_only_grid
from pardecode.testing.controls import CONTROLS
from pardecode.testing.runs import takes_auto_window

SAMPLES = 3000
COLUMNS = 3  # the widest reference grid: zipar is exact at window >= 3

# per built-in (its name with "_" for "-"): a small and a wide setting, both exact; single-window
# strategies and placed-slot ones (zipar, pjd, sjd_pac_tree); the knob of those exact only at one
EXACT = {
    "ar": [{}],
    "sjd": [{"window": 1}, {"window": 6, "coupling": "gumbel"}],
    "sjd_above": [{"window": 1}, {"window": 6, "init": "repeat"}],
    "sjd2": [{"window": 1, "steps": 1}, {"window": 6, "steps": 3}],
    "sjd_pac": [{"window": 1}, {"window": 6}],
    "sjd_reuse": [{"window": 1}, {"window": 6, "threshold": 0.2}],
    "sjd_pac_tree": [
        {"window": 1, "branches": 2, "depth": 0},
        {"window": 6, "branches": 4, "depth": 3, "siblings": "sampled"},
        {"window": "auto", "branches": 3, "depth": 2},  # the whole tree sized per pass
    ],
    "zipar": [{"window": COLUMNS}, {"window": 64}],
    "pjd": [{"rows": 1, "window": 1}, {"rows": 1, "window": 4, "mask": "causal", "init": "random"}],
    "lantern": [{"delta": 0, "window": 2}],
    "gsd": [{"k": 0, "window": 6}],
    "entropy_sd": [{"strength": 0, "window": 3}],
}
GREEDY = {"jacobi": [{"window": 1}, {"window": "auto"}]}
LOSSY = [
    ("zipar", {"window": 1}),
    ("pjd", {"rows": 2, "lag": 1}),
    ("lantern", {"delta": 0.5}),
    ("gsd", {}),
    ("entropy_sd", {}),
]


def builtins() -> dict[str, type]:
    """The built-in strategy classes by name ('-' read as '_'), each once."""
    out = {}
    for name in plugins().strategies.names():
        entry = plugins().strategies.get(name)
        if entry.plugin == "pardecode.strategies" and entry.factory not in out.values():
            out[name.replace("-", "_")] = entry.factory
    return out


def cases(table):
    return [
        pytest.param(name, options, i == 0, id=f"{name}-{options}")
        for name, variants in table.items()
        for i, options in enumerate(variants)
    ]


def test_every_builtin_is_certified_here_as_it_claims():
    claims = {name: cls.claim.kind for name, cls in builtins().items()}
    assert set(claims) == set(EXACT) | set(GREEDY)
    assert {n for n, k in claims.items() if k == "greedy"} == set(GREEDY)
    for name, variants in EXACT.items():
        cls = builtins()[name]
        for options in variants:
            assert cls.claim.kind == "exact" or cls.claim.holds({**_defaults(cls), **options}, COLUMNS), name


def _defaults(cls) -> dict:
    from pardecode.core.options import options_of

    return {o.name: o.default for o in options_of(cls)[0]}


@pytest.mark.parametrize("name,options,greedy", cases(EXACT))
def test_exact_builtins_pass(name, options, greedy):
    strategy = builtins()[name](**options)
    report = check_exact(strategy, samples=SAMPLES, greedy=greedy)
    assert report.tests and not report.deviation_detected, report.table()
    assert report.checks[0].name.startswith("forward passes") and report.checks[0].passed
    if takes_auto_window(strategy):  # automatic sizing changed the window within the decode
        auto = [t.name for t in report.tests if "automatic window" in t.name]
        assert auto and "1 widths" not in auto[0]
    if greedy:  # at temperature 0 the tokens are greedy AR's (on the 2 grids for zipar and pjd)
        assert sum("greedy AR" in c.name for c in report.checks) >= 2


@pytest.mark.parametrize("name,options,_", cases(GREEDY))
def test_greedy_builtins_equal_greedy_ar(name, options, _):
    report = check_greedy(builtins()[name](**options))
    assert len(report.checks) == 4 and not report.deviation_detected, report.table()


def test_a_sampling_certification_of_a_greedy_strategy_runs_nothing_statistical():
    report = check_exact(builtins()["jacobi"](window=2), samples=200, greedy=False)
    assert not report.tests and not report.ran and "jacobi decodes greedily" in report.skipped[0].reason


@pytest.mark.parametrize("name,options", LOSSY, ids=[f"{n}-{o}" for n, o in LOSSY])
def test_lossy_settings_are_flagged(name, options):
    report = check_exact(builtins()[name](**options), samples=SAMPLES, greedy=False)
    assert report.deviation_detected, report.table()
    assert not report.failed_checks  # flagged by the statistics, not by a crash


@pytest.mark.parametrize("control", CONTROLS, ids=[c.name for c in CONTROLS])
def test_negative_controls_are_flagged_and_exact_without_their_bias(control):
    assert check_exact(control(strength=1.0), samples=SAMPLES, greedy=False).deviation_detected
    unbiased = check_exact(control(strength=0.0), samples=SAMPLES, references=[free_sequence()], single=0, greedy=False)
    assert unbiased.tests and not unbiased.deviation_detected, unbiased.table()


def test_a_window_set_by_pass_number_is_certified():
    strategy = builtins()["sjd"](window=2)
    report = check_exact(
        strategy, samples=SAMPLES, references=[image_only_grid()], single=0, greedy=False, window_schedule=(1, 4, 2, 3)
    )
    scheduled = [t for t in report.tests if "window by pass number [1, 4, 2, 3]" in t.name]
    assert len(scheduled) == 2 and not report.deviation_detected, report.table()
    assert strategy.window == 2  # the schedule ran on a copy


def test_a_strategy_that_refuses_every_reference_runs_nothing():
    report = check_exact(builtins()["zipar"](window=3), samples=200, references=[free_sequence()], greedy=False)
    assert not report.ran and "no image grid" in report.skipped[0].reason
    assert report.verdict().startswith("nothing ran")
