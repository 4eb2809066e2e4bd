"""`pardecode certify` end to end: exit 0 when no deviation is detected, 1 when one is, 2 for a
usage error; claims in `pardecode list`. Certifications at 2000 rows per run (fixed seeds)."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pardecode import list_plugins
from pardecode.cli import main
from pardecode.core.claims import Claim, ClaimFromLossless, claim_of
from pardecode.core.errors import ConfigError
from pardecode.core.strategy import Strategy

SAMPLES = "2000"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin"


@pytest.fixture
def controls(tmp_path, monkeypatch):
    """The negative controls registered by an installed distribution (an entry point), as a package
    of controls would register them."""
    info = tmp_path / "pardecode_controls-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pardecode-controls\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[pardecode]\ncontrols = pardecode.testing.controls\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_exact_builtin_exits_0_through_the_command_line():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "pardecode.cli",
        "certify",
        "sjd",
        "-S",
        "window=3",
        "--samples",
        SAMPLES,
        "--json",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["claim"]["kind"] == "exact" and out["options"] == {"window": 3}
    report = out["report"]
    assert report["alpha"] == 1e-3 and not report["deviation_detected"] and len(report["tests"]) == 22


def test_the_verdict_table(capsys):
    assert main(["certify", "ar", "--samples", SAMPLES]) == 0
    out = capsys.readouterr().out
    assert "claim: exact (AR's distribution)" in out and "family-wise false-alarm rate 0.001 (Holm" in out
    assert "passes per token 1.000 (batch-1 decodes)" in out and "verdict: no deviation detected" in out
    for column in ("Holm p", "detects", "passes/token"):
        assert column in out


@pytest.mark.parametrize("name", ["control_skip_residual", "control_tempered_ratio", "control_accept_all"])
def test_negative_controls_exit_1(controls, capsys, name):
    assert main(["certify", name, "--samples", SAMPLES]) == 1
    out = capsys.readouterr().out
    assert "claim: lossy" in out and "verdict: DEVIATION DETECTED" in out


def test_a_strategy_exact_at_a_knob_is_certified_there_unless_told_otherwise(capsys):
    assert main(["certify", "pjd", "--samples", SAMPLES]) == 0
    out = capsys.readouterr().out
    assert "certified at its exact knob: rows=1" in out
    assert main(["certify", "zipar", "-S", "window=1", "--samples", SAMPLES]) == 1
    out = capsys.readouterr().out
    assert "window=1 lies outside the exact knob (exact at window >= columns" in out


def test_a_greedy_strategy_is_compared_with_greedy_ar(capsys):
    assert main(["certify", "jacobi", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "greedy" and out["claim"]["kind"] == "greedy" and len(out["report"]["checks"]) == 4


@pytest.mark.parametrize(
    "args,message",
    [
        (["nope"], "pardecode: error: unknown strategy 'nope'; known strategies: ar, "),
        (["sjd", "-S", "window=0"], "pardecode: error: window must be an integer >= 1 or 'auto', got 0"),
        (["sjd", "-S", "bogus=1"], "pardecode: error: unknown option(s) 'bogus' for strategy 'sjd'"),
        (["sjd", "-S", "window"], "pardecode: error: --strategy-option takes KEY=VALUE, got 'window'"),
        (["sjd", "--samples", "5"], "pardecode: error: --samples must be >= 100, got 5"),
        (["sjd", "--alpha", "2"], "pardecode: error: --alpha must be in (0, 1), got 2.0"),
        (["zipar", "-S", "window=3", "--samples", "100"], None),  # refuses no reference: runs (exit 0)
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, args, message):
    code = main(["certify", *args])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 2 and err.startswith(message) and err.count("\n") == 1


def test_a_strategy_that_runs_on_no_reference_is_a_usage_error(capsys, monkeypatch):
    from pardecode.testing import checks

    free = checks.default_references()[0]
    monkeypatch.setattr(checks, "default_references", lambda: (free,))
    assert main(["certify", "zipar"]) == 2
    message = "strategy 'zipar' ran on none of the reference backbones: not applicable: strategy 'zipar' decodes image"
    assert message in capsys.readouterr().err


@pytest.fixture
def echo_unimported():
    """The example plugin's module imported afresh by the test and forgotten after it."""
    sys.modules.pop("pardecode_echo", None)
    yield
    sys.modules.pop("pardecode_echo", None)


def test_a_plugin_strategy_is_certified_by_name(tmp_path, monkeypatch, capsys, echo_unimported):
    """The example plugin installed (its module and a dist-info with the entry point): `pardecode
    certify echo`, as its README shows."""
    shutil.copy(EXAMPLE / "src" / "pardecode_echo.py", tmp_path / "pardecode_echo.py")
    info = tmp_path / "pardecode_echo-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pardecode-echo\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[pardecode]\necho = pardecode_echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["certify", "echo", "--samples", SAMPLES]) == 0
    assert "claim: exact (AR's distribution)" in capsys.readouterr().out
    assert "pardecode certify echo" in (EXAMPLE / "README.md").read_text()


def test_the_example_plugin_certifies_echo_in_its_own_test(monkeypatch, echo_unimported):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    spec = importlib.util.spec_from_file_location("example_plugin_test_echo", EXAMPLE / "tests" / "test_echo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_echo_keeps_the_distribution()
    module.test_echo_is_greedy_ar_at_temperature_0()


def test_list_shows_every_claim(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for claim in (
        "claim: exact (AR's distribution)",
        "claim: greedy AR, token for token (temperature 0 only)",
        "claim: exact at window >= columns, lossy elsewhere",
        "claim: exact at rows = 1, lossy elsewhere",
        "claim: exact at delta = 0, lossy elsewhere",
    ):
        assert claim in out
    strategies = list_plugins()["strategies"]
    assert all(e["claim"]["kind"] in ("exact", "exact_at", "greedy") for e in strategies)
    pjd = next(e for e in strategies if e["name"] == "pjd")
    text = "exact at rows = 1, lossy elsewhere"
    assert pjd["claim"] == {"kind": "exact_at", "knobs": {"rows": 1}, "text": text, "note": ""}


def test_claims_default_from_the_lossless_flag_and_are_validated():
    class Exact(Strategy):
        propose = verify = None

    class Lossy(Exact):
        lossless = False

    class Depends(Exact):
        lossless = property(lambda self: True)

    assert Exact.claim == Claim.exact() and Lossy.claim == Claim.lossy() and Depends.claim.kind == "lossy"
    assert isinstance(Strategy.__dict__["claim"], ClaimFromLossless)
    assert claim_of(Lossy) == Claim.lossy() and claim_of(lambda: None) is None
    knob = Claim.exact_at(window=">= columns", rows=1)
    assert knob.settings(columns=5) == {"rows": 1, "window": 5}
    assert knob.holds({"window": 5, "rows": 1}, 5) and not knob.holds({"window": 4, "rows": 1}, 5)
    assert not knob.holds({"window": 9}, 5) and Claim.exact_at(k=">= 2").holds({"k": 2}, 0)
    for bad in (
        lambda: Claim("exact_at"),
        lambda: Claim("exact", {"rows": 1}),
        lambda: Claim("maybe"),
        lambda: Claim.exact_at(window=">= rows"),
    ):
        with pytest.raises((ConfigError, ValueError)):
            bad()
