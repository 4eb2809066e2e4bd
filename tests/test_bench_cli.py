"""`pardecode bench` end to end: built-in suites, separate processes (shards, a kill), merge, compare."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pardecode.adapters import FASHION_DIR
from pardecode.benchmarks.metrics import summarize
from pardecode.benchmarks.results import ResultsDir
from pardecode.cli import main

ROOT = Path(__file__).resolve().parents[1]
TOY_SUITE = """
name = "split"
prompts = ["a sneaker", "a dress", "a bag"]
seeds = [0, 1]
batch = 2
repeats = {repeats}

[[backbones]]
name = "toy"
options = {{ length = {length} }}

[[strategies]]
name = "ar"

[[strategies]]
name = "sjd"
grid = {{ window = [4, 8] }}
"""


def bench_process(*args, env=None) -> subprocess.Popen:
    """`pardecode bench ...` in its own Python process, as torchrun or a shell would start it."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "pardecode.cli", "bench", *map(str, args), "--no-progress", "--threads", "1"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def figures(out):
    results = ResultsDir(out)
    return [
        (r.setting, r.runs, r.passes, r.compression, r.tokens_per_pass)
        for b in summarize(results.suite(), results.records())
        for r in b.settings
    ]


def test_quick_runs_on_the_toy_backbone_through_the_cli(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["bench", "quick", "--out", str(out), "--backbone", "toy", "-B", "length=20", "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "# Benchmark `quick`" in report and "(complete)" in report
    assert "`sjd window=16 init=random`" in report
    assert main(["bench", "quick", "--out", str(out), "--backbone", "toy", "-B", "length=20", "--no-progress"]) == 0
    assert "0 run(s)" in capsys.readouterr().out  # everything was recorded already
    assert main(["bench", "--compare", str(out), str(out)]) == 0
    assert "(+0.0%)" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["bench", "quick"]) == 2
    assert "needs --out DIR" in capsys.readouterr().err
    assert main(["bench", "--merge", str(tmp_path)]) == 2
    assert "holds no benchmark results" in capsys.readouterr().err
    assert main(["bench", "quick", "--out", str(tmp_path), "--shard", "3/2"]) == 2
    assert "shard must be i/n" in capsys.readouterr().err
    assert main(["bench", "--list-suites"]) == 0
    assert "quick" in capsys.readouterr().out


@pytest.mark.slow
def test_two_processes_split_a_suite_and_merge_into_the_single_process_figures(tmp_path):
    suite = tmp_path / "split.toml"
    suite.write_text(TOY_SUITE.format(repeats=1, length=24))
    split = tmp_path / "split"
    workers = [
        bench_process(suite, "--out", split, "--no-report", env={"RANK": "0", "WORLD_SIZE": "2"}),
        bench_process(suite, "--out", split, "--no-report", "--shard", "1/2"),
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    assert sorted(p.name for p in ResultsDir(split).results_files()) == [
        "results.shard-0-of-2.jsonl",
        "results.shard-1-of-2.jsonl",
    ]
    assert main(["bench", "--merge", str(split)]) == 0
    assert main(["bench", str(suite), "--out", str(tmp_path / "one"), "--no-progress", "--threads", "1"]) == 0
    assert figures(split) == figures(tmp_path / "one")
    report = (split / "report.md").read_text()
    assert "18 of 18 runs (complete)" in report and "| 0/2 |" in report and "| 1/2 |" in report


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    suite = tmp_path / "long.toml"
    suite.write_text(TOY_SUITE.format(repeats=8, length=96))
    out = tmp_path / "out"
    worker = bench_process(suite, "--out", out)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while not (results.exists() and len(results.read_text().splitlines()) >= 5):
        assert worker.poll() is None and time.monotonic() < deadline, worker.communicate()[1]
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    done = len(ResultsDir(out).records())
    assert 5 <= done < 144
    assert main(["bench", str(suite), "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    records = ResultsDir(out).records()
    assert len(records) == 144 == len({json.dumps(r["key"], sort_keys=True) for r in records})


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION_DIR / "config.json").is_file(), reason="the default fashion model is not trained yet")
def test_quick_as_shipped_on_the_default_model(tmp_path):
    out = tmp_path / "quick"
    # one thread: the machine's cores are shared with other work, and oversubscribing them is slow
    assert main(["bench", "quick", "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    report = (out / "report.md").read_text()
    assert "## Backbone `fashion`" in report and "(complete)" in report
    assert "(n=16)" in report  # 2 prompts x 2 seeds x 4 images judged per setting
    assert (out / "fashion-compression-quality.png").is_file() and (out / "fashion-acceptance.png").is_file()
