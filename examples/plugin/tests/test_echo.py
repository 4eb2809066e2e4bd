"""The echo strategy keeps AR's distribution: certified with pardecode.testing, as any plugin can be.

check_exact decodes reference backbones whose sequence distributions are known exactly and tests
the sequences echo commits (chi-square and G tests, family-wise false-alarm rate 1e-3, fixed
seeds); echo's window is a plain integer read at every pass, so a window changed by pass number is
certified too. check_greedy compares its tokens with greedy AR's at temperature 0.
"""

from pardecode_echo import Echo

from pardecode.testing import check_exact, check_greedy


def test_echo_keeps_the_distribution():
    report = check_exact(Echo(window=3), samples=3000, window_schedule=(1, 4, 2))
    assert report.tests and not report.deviation_detected, report.table()


def test_echo_is_greedy_ar_at_temperature_0():
    report = check_greedy(Echo(window=5))
    assert not report.deviation_detected, report.table()
