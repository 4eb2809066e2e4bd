"""`check_exact` and `check_greedy`: does a strategy commit what AR sampling would?

check_exact decodes the reference backbones (`references`) with the strategy and tests the
histogram of decoded sequences against the exact distribution, by a pooled chi-square and a G
test each, with a fixed seed:

- a large batch (`samples` rows, one prompt) per reference and sampling setting (plain, top-k,
  top-p, guidance; grids with and without end-of-line);
- row pairs of the first such batch: the first two tokens of rows 2i and 2i+1 against the product
  of their exact marginals (rows must not share randomness);
- a batch of different prompts (`samples` rows cycling through three): each prompt's rows against
  that prompt's own distribution, the statistics summed;
- windows that change mid-decode: window="auto" under a cost profile that makes the planner
  switch, and, on request, a window set by pass number (`window_schedule`);
- `single` independent batch-1 decodes (slow, so fewer) on the reference with the fewest possible
  sequences.

Exact checks ride along: every decode's forward passes equal the calls the reference session
counted, every decode finishes, and at temperature 0 the tokens equal greedy AR's (`check_greedy`).
Each test's p-value is simulated from exact samples of its distribution (`stats.simulated_p`),
so it is valid at any sample size, and the p-values are corrected together by Holm's method at
the family-wise level `alpha`: a correct strategy is flagged with probability at most `alpha` per
certification.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import numpy as np

from ..core.config import SamplingConfig
from ..core.errors import ConfigError, PardecodeError
from ..core.options import options_of
from ..core.strategy import Strategy
from .references import Reference, default_references, describe, greedy_references
from .report import CheckResult, Report, Skipped, TestResult
from .runs import (
    NotApplicable,
    Run,
    first_mismatch,
    passes_per_token,
    run,
    takes_auto_window,
    with_auto_window,
)
from .stats import Fit, combined, detectable_tv, goodness_of_fit, simulated_p

ALPHA = 1e-3  # family-wise false-alarm rate of one certification
POWER = 0.9  # the detection probability `detectable_tv` is quoted at
DEFAULT_SAMPLES = 20_000  # rows of each batched run
GREEDY_PROMPTS = ("ab", "cde", "x", "hello")
GREEDY_ALONE = ("x", "hello")  # the shortest and the longest prompt, each decoded alone too
GREEDY_SETTINGS = (SamplingConfig(temperature=0), SamplingConfig(temperature=0, cfg_scale=2.0))
PAIR_TOKENS = 2  # leading tokens of each row the row-pair test compares


def default_single(samples: int) -> int:
    """Batch-1 decodes for `samples` rows per batched run: 1 per 80 rows, at least 100."""
    return max(100, samples // 80)


def resolve(strategy: Strategy | str) -> Strategy:
    """A strategy instance: `strategy` itself, or the registered one of that name with its defaults."""
    if isinstance(strategy, str):
        from ..api import get_strategy

        return get_strategy(strategy)
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"expected a pardecode.Strategy or a registered name, got {type(strategy).__name__}")
    return strategy


def strategy_options(strategy: Strategy) -> dict[str, Any]:
    """The strategy's option values (its attrs fields), for the report."""
    if not attrs.has(type(strategy)):
        return {}
    return {o.name: getattr(strategy, o.name, None) for o in options_of(type(strategy))[0]}


@attrs.define
class _Findings:
    """What a certification collects while it runs."""

    alpha: float
    seed: int = 0  # of the simulated p-values
    confirm_all: bool = False  # simulate every test, not only until one confirms a deviation
    fits: list[tuple[str, str, Fit, float]] = attrs.field(factory=list)  # name, method, fit, passes/token
    checks: list[CheckResult] = attrs.field(factory=list)
    skipped: list[Skipped] = attrs.field(factory=list)
    decodes: int = 0
    miscounted: list[str] = attrs.field(factory=list)
    failures: list[str] = attrs.field(factory=list)

    def fit(self, name: str, fit: Fit, ppt: float) -> None:
        self.fits += [(name, "chi-square", fit, ppt), (name, "G", fit, ppt)]

    def counted(self, label: str, r: Run) -> Run:
        self.decodes += 1
        if not r.passes_match:
            self.miscounted.append(f"{label}: loop {r.result.forward_passes}, session {r.calls}")
        return r

    def attempt(self, label: str, *args: Any, **kwargs: Any) -> Run | None:
        """`run(*args)`, or None after recording why not (refused: skipped; failed: a failed check)."""
        try:
            return self.counted(label, run(*args, **kwargs))
        except NotApplicable as err:
            self.skipped.append(Skipped(label, f"not applicable: {err}"))
        except PardecodeError as err:
            self.failures.append(f"{label}: {type(err).__name__}: {err}")
        return None

    def exact_p_values(self, asymptotic: list[float], level: float) -> list[float | None]:
        """Simulated p-values (`stats.simulated_p`), most significant test first. A test is flagged
        when at most one of 2 / level exact draws reaches its statistic. Once one test confirms a
        deviation, the other tests whose asymptotic p is below `level` are not simulated (each would
        cost all its draws and could not change the verdict) unless `confirm_all`."""
        budget = math.ceil(2 / level)
        exact: list[float | None] = [0.0 if fit.impossible else None for _, _, fit, _ in self.fits]  # exactly 0
        confirmed = any(p == 0.0 for p in exact)
        for i in sorted(range(len(asymptotic)), key=asymptotic.__getitem__):
            _, method, fit, _ = self.fits[i]
            if exact[i] is not None or confirmed and asymptotic[i] < level and not self.confirm_all:
                continue
            statistic = fit.chi2 if method == "chi-square" else fit.g
            exact[i] = simulated_p(fit.parts, statistic, method, budget, np.random.default_rng([self.seed, i]))
            confirmed |= exact[i] <= level
        return exact

    def report(self, strategy: Strategy, seconds: float, passes: float | None, notes: Sequence[str] = ()) -> Report:
        level = self.alpha / max(1, len(self.fits))
        asymptotic = [fit.p_chi2 if method == "chi-square" else fit.p_g for _, method, fit, _ in self.fits]
        tests = []
        for (name, method, fit, ppt), p, exact in zip(self.fits, asymptotic, self.exact_p_values(asymptotic, level)):
            stat = fit.chi2 if method == "chi-square" else fit.g
            tv = detectable_tv(fit.samples, fit.df, level, POWER, fit.pooled_mass)
            tests.append(
                TestResult(
                    name,
                    method,
                    fit.samples,
                    stat,
                    fit.df,
                    exact,
                    p,
                    tv,
                    fit.pooled_mass,
                    fit.impossible,
                    ppt,
                    fit.parts,
                )
            )
        checks = list(self.checks)
        if self.decodes:
            detail = f"{self.decodes} decodes" if not self.miscounted else "; ".join(self.miscounted[:3])
            counted = CheckResult("forward passes = reference session's forward calls", not self.miscounted, detail)
            checks.insert(0, counted)
        checks += [CheckResult("decode finishes", False, f) for f in self.failures]
        return Report(
            strategy.name,
            strategy_options(strategy),
            self.alpha,
            tuple(tests),
            tuple(checks),
            tuple(self.skipped),
            seconds,
            passes,
            tuple(notes),
        )


def _seeds(seed: int) -> Iterator[int]:
    """Distinct, reproducible seeds for the runs of one certification."""
    return itertools.count(seed * 1_000_000)


def check_exact(
    strategy: Strategy | str,
    *,
    samples: int = DEFAULT_SAMPLES,
    single: int | None = None,
    seed: int = 0,
    alpha: float = ALPHA,
    references: Sequence[Reference] | None = None,
    window_schedule: Sequence[int] | None = None,
    greedy: bool = True,
    confirm_all: bool = False,
) -> Report:
    """Certify that `strategy` commits sequences distributed exactly as AR sampling (module docstring).

    `samples`: rows of each batched run; `single`: batch-1 decodes (default `default_single`);
    `window_schedule`: windows to set by pass number, for strategies that read a plain integer
    `window` at every proposal; `greedy`: also compare with greedy AR at temperature 0;
    `confirm_all`: give every test its simulated p-value, also after one has confirmed a deviation.
    """
    start = time.perf_counter()
    strategy = resolve(strategy)
    single = default_single(samples) if single is None else single
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 100:
        raise ConfigError(f"samples must be an integer >= 100, got {samples!r}")
    if isinstance(single, bool) or not isinstance(single, int) or single < 0:
        raise ConfigError(f"single must be an integer >= 0, got {single!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    refs = tuple(references) if references is not None else default_references()
    found, seeds = _Findings(alpha, seed, confirm_all), _seeds(seed)
    ran = _large_batches(found, strategy, refs, samples, seeds)
    passes = None
    if ran:  # the first reference and setting the strategy ran on hosts the other batched runs
        _prompt_batch(found, strategy, *ran[0], samples, seeds)
        _changing_windows(found, strategy, *ran[0], samples, seeds, window_schedule)
        if single:
            passes = _batch_one(found, strategy, min((r for r, _ in ran), key=lambda r: r.support), single, seeds)
    if greedy:
        _greedy_checks(found, strategy, seed, greedy_references(), window_schedule)
    return found.report(strategy, time.perf_counter() - start, passes)


def _large_batches(
    found: _Findings, strategy: Strategy, refs: Sequence[Reference], samples: int, seeds: Iterator[int]
) -> list[tuple[Reference, SamplingConfig]]:
    """A batch of `samples` rows per reference and setting (and the row-pair test on the first);
    returns the (reference, setting) pairs that ran."""
    ran = []
    for ref in refs:
        for sampling in ref.settings:
            label = f"{ref.name}, {describe(sampling)}"
            r = found.attempt(label, ref, strategy, [ref.prompts[0]] * samples, sampling, next(seeds))
            if r is None:
                continue
            tokens, exact, ppt = r.result.tokens, ref.exact(ref.prompts[0], sampling), passes_per_token(r.result)
            found.fit(f"{label}, batch of {samples}", goodness_of_fit(ref.counts(tokens), exact), ppt)
            if not ran:
                found.fit(f"{label}, row pairs independent", _pairs(ref, tokens, exact), ppt)
            ran.append((ref, sampling))
    return ran


def _prompt_batch(
    found: _Findings, strategy: Strategy, ref: Reference, sampling: SamplingConfig, samples: int, seeds: Iterator[int]
) -> None:
    """A batch cycling through the reference's prompts: each prompt's rows against its own distribution."""
    label = f"{ref.name}, {describe(sampling)}"
    k = len(ref.prompts)
    prompts = [ref.prompts[i % k] for i in range(samples)]
    r = found.attempt(f"{label}, different prompts", ref, strategy, prompts, sampling, next(seeds))
    if r is not None:
        tokens = r.result.tokens
        fits = [goodness_of_fit(ref.counts(tokens[i::k]), ref.exact(p, sampling)) for i, p in enumerate(ref.prompts)]
        found.fit(
            f"{label}, batch of {k} prompts (each row against its own)", combined(fits), passes_per_token(r.result)
        )


def _batch_one(found: _Findings, strategy: Strategy, ref: Reference, single: int, seeds: Iterator[int]) -> float | None:
    """`single` decodes of one row each; returns their mean forward passes per token."""
    sampling, prompt = ref.settings[0], ref.prompts[0]
    counts, per_token = np.zeros(ref.sequences, dtype=np.int64), []
    for _ in range(single):
        r = found.attempt(f"{ref.name}, batch 1", ref, strategy, [prompt], sampling, next(seeds))
        if r is None:
            return None
        counts += ref.counts(r.result.tokens)
        per_token.append(passes_per_token(r.result))
    passes = float(np.mean(per_token))
    fit = goodness_of_fit(counts, ref.exact(prompt, sampling))
    found.fit(f"{ref.name}, {describe(sampling)}, {single} batch-1 decodes", fit, passes)
    return passes


def _pairs(ref: Reference, tokens, exact: np.ndarray) -> Fit:
    """The leading tokens of rows 2i and 2i+1 against the product of their exact marginals."""
    lead = min(PAIR_TOKENS, ref.length)
    prefix = ref.prefix(exact, lead)
    codes = ref.codes(tokens[:, :lead])
    pairs = len(codes) // 2
    joint = codes[0 : 2 * pairs : 2] * len(prefix) + codes[1 : 2 * pairs : 2]
    return goodness_of_fit(np.bincount(joint, minlength=len(prefix) ** 2), np.outer(prefix, prefix).ravel())


def _changing_windows(
    found: _Findings,
    strategy: Strategy,
    ref: Reference,
    sampling: SamplingConfig,
    samples: int,
    seeds: Iterator[int],
    schedule: Sequence[int] | None,
) -> None:
    """Windows that change mid-decode: automatic (a cost profile that makes the planner switch), and
    set by pass number when a schedule is given."""
    label = f"{ref.name}, {describe(sampling)}"
    prompts = [ref.prompts[0]] * samples
    exact = ref.exact(ref.prompts[0], sampling)
    if takes_auto_window(strategy):
        auto = with_auto_window(strategy)
        r = found.attempt(f"{label}, automatic window", ref, auto, prompts, sampling, next(seeds))
        if r is not None:
            widths = sorted(r.widths)
            found.fit(
                f"{label}, automatic window ({len(widths)} widths: {widths[0]}..{widths[-1]})",
                goodness_of_fit(ref.counts(r.result.tokens), exact),
                passes_per_token(r.result),
            )
    else:
        found.skipped.append(
            Skipped(
                f"{label}, automatic window",
                "the strategy takes no window='auto'; "
                "check_exact(window_schedule=...) sets a plain window by pass number",
            )
        )
    if schedule:
        r = found.attempt(
            f"{label}, window by pass number", ref, strategy, prompts, sampling, next(seeds), schedule=schedule
        )
        if r is not None:
            found.fit(
                f"{label}, window by pass number {list(schedule)}",
                goodness_of_fit(ref.counts(r.result.tokens), exact),
                passes_per_token(r.result),
            )


def _greedy_checks(
    found: _Findings, strategy: Strategy, seed: int, references: Sequence[Reference], schedule: Sequence[int] | None
) -> None:
    """One check per reference: at temperature 0 (with and without guidance) the strategy's tokens
    equal greedy AR's, for a batch of different prompts, two of them alone, an automatic window and
    a scheduled one (where the strategy takes them)."""
    from ..api import get_strategy

    ar = get_strategy("ar")
    auto = with_auto_window(strategy) if takes_auto_window(strategy) else None
    for ref in references:
        compared, mismatches, refused = [], [], []
        for sampling in GREEDY_SETTINGS:
            label = f"{ref.name}, {describe(sampling)}"
            variants = [("batch", strategy, GREEDY_PROMPTS, {})]
            variants += [(f"'{p}' alone", strategy, [p], {}) for p in GREEDY_ALONE]
            if auto is not None:
                variants.append(("automatic window", auto, GREEDY_PROMPTS, {}))
            if schedule:
                variants.append(("window by pass number", strategy, GREEDY_PROMPTS, {"schedule": schedule}))
            expected = None
            for what, s, prompts, extra in variants:
                try:
                    r = found.counted(label, run(ref, s, prompts, sampling, seed, **extra))
                except NotApplicable as err:
                    refused.append((describe(sampling), str(err)))
                    break
                except PardecodeError as err:
                    mismatches.append(f"{label}, {what}: {type(err).__name__}: {err}")
                    continue
                if expected is None:
                    expected = found.counted(label, run(ref, ar, GREEDY_PROMPTS, sampling, seed)).result.tokens
                rows = [GREEDY_PROMPTS.index(p) for p in prompts]
                wrong = first_mismatch(r.result.tokens, expected[rows])
                compared.append(what)
                if wrong:
                    mismatches.append(f"{label}, {what}: {wrong}")
        name = f"{ref.name}: tokens = greedy AR's at T=0"
        found.skipped.extend(Skipped(f"{name}, {setting}", f"not applicable: {reason}") for setting, reason in refused)
        if compared or mismatches:
            detail = "; ".join(mismatches[:3]) or f"{len(compared)} decodes: " + ", ".join(dict.fromkeys(compared))
            found.checks.append(CheckResult(name, not mismatches, detail))


def check_greedy(
    strategy: Strategy | str,
    *,
    seed: int = 0,
    references: Sequence[Reference] | None = None,
    window_schedule: Sequence[int] | None = None,
) -> Report:
    """Certify that at temperature 0 `strategy` commits greedy AR's tokens, token for token: for a
    batch of different prompts, two of them alone, automatic and scheduled windows, with and without
    guidance, on every reference it runs on (`greedy_references()` by default)."""
    start = time.perf_counter()
    strategy = resolve(strategy)
    found = _Findings(ALPHA)
    refs = tuple(references) if references is not None else greedy_references()
    _greedy_checks(found, strategy, seed, refs, window_schedule)
    return found.report(strategy, time.perf_counter() - start, None)
