"""What a certification found: its statistical tests, its exact checks, what it skipped, and the
verdict, which a reader (or `pardecode certify --json`) can audit."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .stats import holm


@attrs.frozen
class TestResult:
    """One goodness-of-fit test of decoded sequences against their exact distribution."""

    __test__ = False  # not a pytest test class

    name: str  # what was decoded, e.g. "free sequence, T=1, batch of 40000"
    method: str  # "chi-square" or "G"
    samples: int
    statistic: float
    df: int
    #: the exact p-value, simulated (`stats.simulated_p`); None when not simulated (the deviation
    #: was already confirmed by a more significant test)
    p_value: float | None
    asymptotic_p: float  # from the chi-square distribution: fast, but too small in the far tail
    #: the smallest total variation distance this test detects with probability 0.9 at the
    #: certification's per-test level (stats.detectable_tv); None when df is 0
    detectable_tv: float | None
    pooled_mass: float
    impossible: int  # sequences decoded that have probability 0
    passes_per_token: float  # forward passes of the decode(s) per span token
    #: how the sequences were binned, per independent part (`stats.Bins`): what an exact sampler's
    #: statistic is drawn from; not part of the printed or JSON report
    bins: tuple = attrs.field(default=(), repr=False, eq=False)


@attrs.frozen
class CheckResult:
    """A check that must hold exactly (no sampling error): pass counts, greedy tokens, decodes that finish."""

    name: str
    passed: bool
    detail: str = ""


@attrs.frozen
class Skipped:
    """A test that did not run, and why (the strategy refused the reference or the setting)."""

    name: str
    reason: str


@attrs.frozen
class Report:
    """A certification's results. `deviation_detected` is the verdict: some test rejects at the
    family-wise level `alpha` after Holm's correction, or some exact check fails."""

    strategy: str
    options: dict[str, Any]
    alpha: float
    tests: tuple[TestResult, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    seconds: float = 0.0
    passes_per_token: float | None = None  # batch-1 decodes: forward passes per span token
    notes: tuple[str, ...] = ()

    @property
    def adjusted(self) -> list[float]:
        """Holm-adjusted p-value of every test, in order, from the exact p-values (1 where none was
        simulated: a larger p-value keeps the correction valid)."""
        return holm([1.0 if t.p_value is None else t.p_value for t in self.tests])

    @property
    def ran(self) -> bool:
        return bool(self.tests or self.checks)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def deviation_detected(self) -> bool:
        return any(p <= self.alpha for p in self.adjusted) or bool(self.failed_checks)

    @property
    def per_test_alpha(self) -> float:
        """The level the most significant test must reach: Holm's first step, alpha / tests."""
        return self.alpha / max(1, len(self.tests))

    def verdict(self) -> str:
        if not self.ran:
            return "nothing ran: the strategy refused every reference and setting"
        failed = self.failed_checks
        flagged = sum(p <= self.alpha for p in self.adjusted)
        if failed or flagged:
            parts = [f"{flagged} test(s) reject"] * bool(flagged)
            parts += [f"{len(failed)} exact check(s) fail"] * bool(failed)
            return "DEVIATION DETECTED: " + " and ".join(parts)
        smallest = min(self.adjusted, default=1.0)
        return f"no deviation detected (smallest Holm-adjusted p {smallest:.3g} > alpha {self.alpha:g})"

    def table(self) -> str:
        """The human-readable verdict table."""
        lines = []
        if self.tests:
            lines.append(
                f"{len(self.tests)} tests against exact AR distributions, family-wise false-alarm rate "
                f"{self.alpha:g} (Holm over exact, simulated p-values: the smallest must reach "
                f"{self.per_test_alpha:.2g}); 'detects' = the smallest total variation deviation found "
                "with probability 0.9"
            )
            width = max(len(t.name) + len(t.method) + 2 for t in self.tests)
            lines.append(
                f"  {'test':<{width}} {'n':>7} {'statistic':>16} {'p':>9} {'asympt. p':>9} {'Holm p':>9} "
                f"{'detects':>8}  {'passes/token':>12}  verdict"
            )
            for t, adj in zip(self.tests, self.adjusted):
                stat = f"{t.statistic:.1f} (df {t.df})" if not t.impossible else f"{t.impossible} impossible"
                detects = "-" if t.detectable_tv is None else f"{t.detectable_tv:.3f}"
                verdict = "DEVIATES" if adj <= self.alpha else "ok" if t.p_value is not None else "not simulated"
                lines.append(
                    f"  {t.name + ': ' + t.method:<{width}} {t.samples:>7} {stat:>16} {_p(t.p_value):>9} "
                    f"{_p(t.asymptotic_p):>9} {_p(adj):>9} {detects:>8}  {t.passes_per_token:>12.3f}  "
                    f"{verdict}"
                )
        if self.checks:
            lines.append("exact checks (must hold with no sampling error):")
            width = max(len(c.name) for c in self.checks)
            for c in self.checks:
                detail = f"  ({c.detail})" if c.detail else ""
                lines.append(f"  {c.name:<{width}}  {'ok' if c.passed else 'FAILED'}{detail}")
        if self.skipped:
            lines.append("not run:")
            lines.extend(f"  {s.name}: {s.reason}" for s in self.skipped)
        lines.extend(self.notes)
        figures = [f"time {self.seconds:.1f} s"]
        if self.passes_per_token is not None:
            figures.insert(0, f"passes per token {self.passes_per_token:.3f} (batch-1 decodes)")
        lines.append("; ".join(figures))
        lines.append(f"verdict: {self.verdict()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        tests = [
            attrs.asdict(t, filter=lambda a, _: a.name != "bins") | {"holm_p": adj, "deviates": adj <= self.alpha}
            for t, adj in zip(self.tests, self.adjusted)
        ]
        return {
            "strategy": self.strategy,
            "options": self.options,
            "alpha": self.alpha,
            "per_test_alpha": self.per_test_alpha,
            "deviation_detected": self.deviation_detected,
            "verdict": self.verdict(),
            "tests": tests,
            "checks": [attrs.asdict(c) for c in self.checks],
            "skipped": [attrs.asdict(s) for s in self.skipped],
            "notes": list(self.notes),
            "passes_per_token": self.passes_per_token,
            "seconds": self.seconds,
        }


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}" if value > 0 and not math.isnan(value) else str(value)
