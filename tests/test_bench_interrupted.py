"""An interrupted bench says what it saved and how to resume; a shard never writes a partial report."""

from pardecode.benchmarks import runner
from pardecode.benchmarks.results import ResultsDir
from pardecode.cli import main

SUITE = """
name = "small"
prompts = ["a sneaker", "a bag"]
seeds = [0]
batch = 1
repeats = 1
warmup = 1

[[backbones]]
name = "toy"
options = { length = 6 }

[[strategies]]
name = "ar"

[[strategies]]
name = "sjd"
params = { window = 2 }
"""


def test_ctrl_c_says_what_was_saved_and_the_same_command_resumes(tmp_path, monkeypatch, capsys, interrupted_at):
    suite, out = tmp_path / "small.toml", tmp_path / "out"
    suite.write_text(SUITE)
    execute = runner.execute
    monkeypatch.setattr(runner, "execute", interrupted_at(execute, 3))  # Ctrl-C at the third run
    command = ["bench", str(suite), "--out", str(out), "--no-progress", "--threads", "1"]
    assert main(command) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == f"pardecode: interrupted: 2 of 4 runs are saved in {out}; run the same command to resume"
    assert len(ResultsDir(out).records()) == 2
    monkeypatch.setattr(runner, "execute", execute)
    assert main(command) == 0
    assert "2 run(s)" in capsys.readouterr().out and len(ResultsDir(out).records()) == 4


def test_shards_write_the_report_only_once_every_run_is_recorded(tmp_path, capsys):
    suite, out = tmp_path / "small.toml", tmp_path / "out"
    suite.write_text(SUITE)
    first = ["bench", str(suite), "--out", str(out), "--no-progress", "--threads", "1", "--shard", "0/2"]
    assert main(first) == 0
    assert (
        f"no report yet: 2 of 4 runs recorded; once every shard has finished: pardecode bench --merge {out}"
        in capsys.readouterr().out
    )
    assert not (out / "report.md").exists()
    assert main([*first[:-1], "1/2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert "4 of 4 runs (complete)" in (out / "report.md").read_text()
