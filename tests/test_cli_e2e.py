"""The main job through the command line, on the shipped default model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


def run(*args, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pardecode.cli", *args], capture_output=True, text=True, env=env, check=check
    )


def test_generate_on_the_default_model_writes_a_grid_and_figures(tmp_path):
    out = tmp_path / "grid.png"
    proc = run(
        "generate",
        "--prompt",
        "a sneaker",
        "--strategy",
        "sjd",
        "--batch",
        "4",
        "--seed",
        "0",
        "--out",
        str(out),
        "--json",
    )
    report = json.loads(proc.stdout)
    assert report["image_tokens"] == 14 * 15 + 1  # 14 rows of 14 cells + end-of-line, then end-of-image
    assert 1 <= report["forward_passes"] <= report["image_tokens"] and report["seconds"] > 0
    assert report["step_compression"] == pytest.approx(report["image_tokens"] / report["forward_passes"], abs=1e-3)
    grid = Image.open(out)
    assert grid.size[0] >= 2 * 28 and grid.size[1] >= 2 * 28


def test_generate_human_readable_and_errors(tmp_path, capsys):
    from pardecode.cli import main

    assert main(["generate", "--prompt", "a bag", "--strategy", "ar", "--out", str(tmp_path / "bag.png")]) == 0
    assert "forward passes for 211 tokens per image" in capsys.readouterr().out and (tmp_path / "bag.png").exists()
    for args, message in [
        (["--strategy", "nope"], "unknown strategy 'nope'; known strategies: ar, "),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--batch", "0"], "--batch must be >= 1, got 0"),
        (["--strategy", "sjd2"], "backbone 'fashion' has no noise conditioning"),
    ]:
        assert main(["generate", "--prompt", "a bag", *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["generate", "--prompt", ""]) == 2
    assert "prompt 0 must be a non-empty string" in capsys.readouterr().err


@pytest.mark.slow
def test_train_demo_runs_a_few_steps_and_resumes(tmp_path):
    proc = run(
        "train-demo",
        "--out",
        str(tmp_path),
        "--steps",
        "2",
        "--limit",
        "64",
        "--quiet",
        "--threads",
        "1",
        "--eval-limit",
        "16",
    )
    first = json.loads(proc.stdout.splitlines()[0])
    assert first["steps"] == 2 and Path(first["model"], "model.safetensors").exists()
    proc = run(
        "train-demo",
        "--out",
        str(tmp_path),
        "--steps",
        "3",
        "--limit",
        "64",
        "--quiet",
        "--threads",
        "1",
        "--eval-limit",
        "16",
    )
    assert json.loads(proc.stdout.splitlines()[0])["steps"] == 3


def test_list_json_names_every_builtin():
    listing = json.loads(run("list", "--json").stdout)
    assert {"ar", "jacobi", "sjd", "sjd2"} <= {e["name"] for e in listing["strategies"]}
    assert {"toy", "chameleon", "emu3", "fashion"} <= {e["name"] for e in listing["backbones"]}


def test_output_is_pardecodes_own_even_with_deprecations_as_errors(tmp_path):
    """No third-party warning or loading bar reaches the user, from the CLI or from the API."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error::FutureWarning,error::DeprecationWarning"}
    env.pop("PARDECODE_VERBOSE", None)
    cli = [
        sys.executable,
        "-m",
        "pardecode.cli",
        "generate",
        "--prompt",
        "a sneaker",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "g.png"),
    ]
    proc = subprocess.run(cli, capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    chosen, summary = proc.stdout.splitlines()[:2]  # without --strategy: the fastest exact setting, named
    assert chosen.startswith("strategy: ") and "the fastest exact setting for this batch" in chosen
    assert summary.split(" on fashion:")[0] in ("ar", "sjd_pac", "sjd")
    api = "import pardecode; b = pardecode.get_backbone('fashion'); pardecode.decode(b, 'ar', ['a bag'], seed=0)"
    proc = subprocess.run([sys.executable, "-c", api], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", api], capture_output=True, text=True, env={**env, "PARDECODE_VERBOSE": "1"}
    )
    assert "Loading weights" in proc.stderr  # asked for: shown


def test_profile_then_generate_with_the_automatic_window(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PARDECODE_CACHE": str(tmp_path)}
    cmd = [sys.executable, "-m", "pardecode.cli"]
    proc = subprocess.run(
        [
            *cmd,
            "profile",
            "--backbone",
            "fashion",
            "--batches",
            "2",
            "--rounds",
            "1",
            "--threads",
            "1",
            "--settings",
            "none",  # the reference sjd's calibration only: what `generate --strategy sjd` reads
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    stored = json.loads(proc.stdout)
    assert stored["batches"] == [2] and len(stored["seconds"][0]) == len(stored["windows"])
    assert Path(stored["path"]).parent == tmp_path / "profiles"
    assert stored["tokens"] and not stored["tokens_by"] and not stored["shape_tokens"]  # calibrated as asked
    gen = [
        *cmd,
        "generate",
        "--prompt",
        "a bag",
        "--strategy",
        "sjd",
        "--batch",
        "2",
        "--window",
        "auto",
        "--seed",
        "1",
        "--json",
    ]
    report = json.loads(subprocess.run(gen, capture_output=True, text=True, env=env, check=True).stdout)
    assert report["strategy"] == "sjd" and report["ar_seconds_estimate"] > 0  # AR's time, from the profile
    bad = subprocess.run(
        [*cmd, "generate", "--prompt", "a bag", "--strategy", "sjd", "--window", "wide"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "must be an integer >= 1 or 'auto', got 'wide'" in bad.stderr
    bad = subprocess.run([*cmd, "profile", "--settings", "sjd_pac", "fast"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown calibration setting(s) ['fast']" in bad.stderr


def test_speed_times_other_strategies_beside_ar_and_refuses_bad_ones(tmp_path):
    env = {**os.environ, "PARDECODE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "pardecode.cli",
        "speed",
        "--backbone",
        "toy",
        "--batches",
        "1",
        "--threads",
        "1",
        "--windows",
        "2",
        "--repeats",
        "1",
        "--out",
        str(tmp_path / "speed"),
    ]
    proc = subprocess.run(
        [*cmd, "--also", "sjd_pac_tree:window=4,branches=2", "sjd_reuse"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "speed" / "speed.json").read_text())
    assert report["also"] == ["sjd_pac_tree window=4, branches=2", "sjd_reuse"]
    rows = {r["setting"]: r for r in report["rows"]}
    assert rows["sjd_pac_tree window=4, branches=2"]["passes"] < rows["ar"]["passes"]
    assert "| 1 | sjd_reuse |" in (tmp_path / "speed" / "speed.md").read_text()
    default = rows["default"]  # the setting `generate` runs without --strategy, timed beside the others
    assert default["chosen"] in ("ar", "sjd_pac", "sjd:maximal", "sjd:gumbel") and default["seconds_per_image"] > 0
    assert f"| {default['chosen']}: " in (tmp_path / "speed" / "speed.md").read_text()
    for bad, says in (
        ("nosuch", "unknown strategy 'nosuch'"),
        ("sjd:bogus=1", "unknown option(s) 'bogus'"),
        ("sjd:window", "--also takes KEY=VALUE"),
    ):
        proc = subprocess.run([*cmd, "--also", bad], capture_output=True, text=True, env=env)
        assert proc.returncode != 0 and says in proc.stderr and "Traceback" not in proc.stderr


def test_speed_compares_the_automatic_window_with_the_fixed_ladder_only():
    from pardecode.benchmarks.speed import render

    rows = [
        {
            "threads": 1,
            "threads_default": False,
            "batch": 1,
            "setting": label,
            "seconds_per_image": sec,
            "speedup_vs_ar": 1.0 / sec,
            "step_compression": 1.0,
        }
        for label, sec in (
            ("ar", 1.0),
            ("sjd", 0.5),
            ("sjd coupling=gumbel", 0.5),
            ("sjd window=2", 0.8),
            ("zipar window=1", 0.1),
        )
    ]
    text = render(
        {"backbone": "toy", "sampling": {"cfg_scale": 1.0}, "repeats": 1, "rows": rows, "also": ["zipar window=1"]}
    )
    assert "| 2: 0.8000 s" in text and "| 1.60 |" in text  # best fixed: sjd window 2, not zipar window 1
