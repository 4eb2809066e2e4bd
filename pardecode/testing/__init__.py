"""Certify that a decoding strategy keeps the model's distribution.

For strategy authors (and `pardecode certify`): reference backbones whose sequence distributions
are known exactly (`references`), their exact distribution under any sampling settings
(`Reference.exact`), `check_exact` (chi-square and G tests of decoded sequences, Holm-corrected)
and `check_greedy` (token for token against greedy AR), negative controls with a known bias
(`controls`), and hypothesis strategies that generate reference backbones
(`pardecode.testing.hypothesis`, needs the `hypothesis` package). docs/certify.md has the details.

    from pardecode.testing import check_exact
    report = check_exact(MyStrategy(window=4))
    assert not report.deviation_detected, report.table()
"""

from .certify import Certification, certify
from .checks import ALPHA, DEFAULT_SAMPLES, check_exact, check_greedy
from .references import (
    Reference,
    default_references,
    free_sequence,
    greedy_references,
    grid_with_end_of_line,
    guided,
    image_only_grid,
)
from .report import CheckResult, Report, Skipped, TestResult

__all__ = [
    "ALPHA",
    "DEFAULT_SAMPLES",
    "Certification",
    "CheckResult",
    "Reference",
    "Report",
    "Skipped",
    "TestResult",
    "certify",
    "check_exact",
    "check_greedy",
    "default_references",
    "free_sequence",
    "greedy_references",
    "grid_with_end_of_line",
    "guided",
    "image_only_grid",
]
