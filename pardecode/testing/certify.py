"""`certify`: test a registered strategy against what it claims (`Strategy.claim`), as the
`pardecode certify` command does.

- exact: `check_exact` on the options given (the strategy's defaults otherwise);
- exact_at: the knob's options are filled in where not given (zipar: window = the references'
  widest grid, 3 columns; pjd: rows = 1), so a plain `pardecode certify zipar` certifies the
  setting the claim is about; options given outside the knob are certified as they are, and a
  detected deviation is then the expected finding;
- greedy: `check_greedy`, token for token against greedy AR at temperature 0;
- lossy: `check_exact`, which measures whether the deviation shows at this sample size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..core.claims import Claim
from ..core.errors import ConfigError
from .checks import ALPHA, DEFAULT_SAMPLES, check_exact, check_greedy, strategy_options
from .references import default_references, greedy_references
from .report import Report


def reference_columns() -> int:
    """The most columns of any reference grid: where a ">= columns" knob is put."""
    return max(r.columns for r in (*default_references(), *greedy_references()))


@attrs.frozen
class Certification:
    """A strategy's claim, the options it was certified at, how, and the report."""

    strategy: str
    claim: Claim
    options: dict[str, Any]  # the options decoded with (the knob's filled in)
    mode: str  # "exact": distribution tests; "greedy": token-for-token comparison with greedy AR
    report: Report
    notes: tuple[str, ...] = ()

    @property
    def deviation_detected(self) -> bool:
        return self.report.deviation_detected

    def text(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "defaults"
        head = [f"certify {self.strategy} ({given}); claim: {self.claim.text}", *self.notes]
        return "\n".join(head + [self.report.table()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "claim": self.claim.to_dict(),
            "options": self.options,
            "mode": self.mode,
            "notes": list(self.notes),
            "report": self.report.to_dict(),
        }


def _format(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


def certify(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
) -> Certification:
    """Certify the registered strategy `name` (built with `options`) against its claim (module docstring)."""
    from ..api import get_strategy

    given = dict(options or {})
    strategy = get_strategy(name, **given)
    claim = type(strategy).claim
    notes = []
    columns = reference_columns()
    if claim.kind == "exact_at":
        knob = {k: v for k, v in claim.settings(columns).items() if k not in given}
        if knob:
            strategy = get_strategy(name, **given, **knob)
            notes.append(
                f"certified at its exact knob: {_format(knob)} (grids of the references have at most "
                f"{columns} columns); give -S KEY=VALUE to certify another setting"
            )
        if not claim.holds(strategy_options(strategy), columns):
            at = _format({k: getattr(strategy, k, None) for k, _ in claim.knobs})
            notes.append(
                f"{at} lies outside the exact knob ({claim.text}): a detected deviation is the expected finding"
            )
    elif claim.kind == "lossy":
        notes.append(
            "the strategy claims to be lossy: certify measures whether its deviation shows at this sample size"
        )
    if claim.kind == "greedy":
        notes.append(
            "the strategy claims greedy AR: its tokens are compared with greedy AR's at temperature 0, token for token"
        )
        report, mode = check_greedy(strategy, seed=seed), "greedy"
    else:
        report, mode = check_exact(strategy, samples=samples, seed=seed, alpha=alpha), "exact"
    if not (report.tests if mode == "exact" else report.checks):
        reasons = "; ".join(dict.fromkeys(s.reason for s in report.skipped)) or "nothing to run"
        raise ConfigError(f"strategy {name!r} ran on none of the reference backbones: {reasons}")
    options_used = {k: v for k, v in strategy_options(strategy).items() if k in given or k in dict(claim.knobs)}
    return Certification(name, claim, options_used, mode, report, tuple(notes))
