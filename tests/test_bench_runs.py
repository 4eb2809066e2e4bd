"""Running suites on the toy backbone: records, resuming, reports, quality checks, compare, shards."""

import json

import attrs
import numpy as np
import pytest
import torch

from pardecode import ConfigError
from pardecode.adapters.toy import ToyBackbone
from pardecode.benchmarks.metrics import lossless_check, summarize, t_tolerance
from pardecode.benchmarks.quality import Quality, pack_images, unpack_images
from pardecode.benchmarks.report import build_report, compare_dirs
from pardecode.benchmarks.results import ResultsDir, Shard
from pardecode.benchmarks.runner import run_suite
from pardecode.benchmarks.suite import Suite
from pardecode.core.plugins import plugins


def toy_suite(backbone="toy", windows=(4, 8), seeds=(0, 1), repeats=1, **extra) -> Suite:
    return Suite.from_dict(
        {
            "name": "toy",
            "prompts": ["a sneaker", "a dress"],
            "seeds": list(seeds),
            "batch": 3,
            "repeats": repeats,
            "backbones": [{"name": backbone, "options": {"length": 24}}],
            "strategies": [
                {"name": "ar"},
                {"name": "ar", "sampling": {"temperature": 0}},
                {"name": "jacobi", "params": {"window": 4}, "sampling": {"temperature": 0}},
                {"name": "sjd", "grid": {"window": list(windows)}},
            ],
            **extra,
        }
    )


def run(suite, out, **kw):
    return run_suite(suite, out, threads=1, progress=False, **kw)


def ids(out):
    return {json.dumps(r["key"], sort_keys=True) for r in ResultsDir(out).records()}


# --- records and resuming -------------------------------------------------------------------------


def test_records_hold_the_loops_trace(tmp_path):
    suite = toy_suite()
    outcome = run(suite, tmp_path)
    assert (outcome.assigned, outcome.ran) == (len(suite.runs()), len(suite.runs()))
    records = ResultsDir(tmp_path).records()
    assert len(records) == len(suite.runs())
    for r in records:
        assert set(r["key"]) == {"backbone", "setting", "strategy", "params", "sampling", "prompt", "seed", "repeat"}
        assert r["forward_passes"] == len(r["widths"]) == max(map(len, r["committed"]))
        assert [sum(row) for row in r["committed"]] == [r["length"]] * r["batch"]
        assert r["tokens"] == r["length"] * r["batch"]
        assert r["seconds"] > 0 and 0 < r["forward_seconds"] <= r["loop_seconds"]
        assert r["images"] is None  # the toy backbone decodes no images
    ar = [r for r in records if r["key"]["setting"] == "ar"]
    assert {r["forward_passes"] for r in ar} == {24}
    # records are appended in run order: settings interleaved
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"]["setting"] for line in lines[:5]] == [s.label for s in suite.settings]


def test_an_interrupted_suite_resumes_without_losing_or_repeating_runs(tmp_path):
    suite = toy_suite()
    run(suite, tmp_path / "full")
    run(suite, tmp_path / "cut")
    results = tmp_path / "cut" / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    kept = 7
    # as if killed mid-way through writing record 8
    results.write_text("".join(lines[:kept]) + lines[kept][: len(lines[kept]) // 2])
    outcome = run(suite, tmp_path / "cut")
    assert (outcome.skipped, outcome.ran) == (kept, len(lines) - kept)
    after = results.read_text().splitlines(keepends=True)
    assert after[:kept] == lines[:kept]  # finished runs were kept, not redone
    assert all(json.loads(line) for line in after)  # the torn line is gone
    assert ids(tmp_path / "cut") == ids(tmp_path / "full")
    assert run(suite, tmp_path / "cut").ran == 0


def test_a_directory_of_another_suite_is_refused_before_running(tmp_path):
    run(toy_suite(), tmp_path)
    before = (tmp_path / "results.jsonl").read_text()
    with pytest.raises(ConfigError, match="holds results of suite 'toy'.*choose another --out"):
        run(toy_suite(windows=(2,)), tmp_path)
    assert (tmp_path / "results.jsonl").read_text() == before


def test_a_setting_that_cannot_run_fails_in_warm_up_before_any_timed_run(tmp_path):
    bad = Suite.from_dict(
        {
            "prompts": ["a"],
            "seeds": [0],
            "backbones": [{"name": "toy"}],
            "strategies": [{"name": "ar"}, {"name": "jacobi"}],  # jacobi needs temperature 0
        }
    )
    with pytest.raises(ConfigError, match="jacobi decodes greedily"):
        run(bad, tmp_path)
    assert not (tmp_path / "results.jsonl").exists()


def test_shards_split_runs_disjointly_and_read_the_launchers_environment():
    assert Shard.from_env({"RANK": "1", "WORLD_SIZE": "3"}) == Shard(1, 3)
    assert Shard.from_env({}) == Shard(0, 1)
    assert Shard.parse("0/2").file_name("results") == "results.shard-0-of-2.jsonl"
    assert Shard().file_name("results") == "results.jsonl"
    taken = [[i for i in range(10) if Shard(k, 3).takes(i)] for k in range(3)]
    assert sorted(sum(taken, [])) == list(range(10))
    for text in ("2/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError, match="shard must be i/n"):
            Shard.parse(text)


def test_shard_files_merge_into_one_report_equal_to_a_single_process_run(tmp_path):
    suite = toy_suite()
    run(suite, tmp_path / "one")
    for k in range(3):
        run(suite, tmp_path / "split", shard=Shard(k, 3))
    assert len(ResultsDir(tmp_path / "split").results_files()) == 3
    assert ids(tmp_path / "split") == ids(tmp_path / "one")

    def figures(d):
        records = ResultsDir(d).records()
        return [
            (r.setting, r.runs, r.passes, r.compression, r.tokens_per_pass)
            for b in summarize(suite, records)
            for r in b.settings
        ]

    assert figures(tmp_path / "split") == figures(tmp_path / "one")


# --- report -----------------------------------------------------------------------------------------


def test_report_tables_ratios_against_ar_and_plots(tmp_path):
    suite = toy_suite(repeats=2)
    run(suite, tmp_path)
    report = build_report(tmp_path).read_text()
    records = ResultsDir(tmp_path).records()
    [summary] = summarize(suite, records)
    rows = {r.setting: r for r in summary.settings}
    sjd = [r for r in records if r["key"]["setting"] == "sjd window=8"]
    ar = [r for r in records if r["key"]["setting"] == "ar"]
    assert rows["sjd window=8"].compression == pytest.approx(
        sum(r["forward_passes"] for r in ar) / sum(r["forward_passes"] for r in sjd)
    )
    assert rows["ar"].compression == rows["ar"].latency_ratio == 1.0
    assert rows["jacobi window=4 temperature=0"].baseline == "ar temperature=0"
    assert rows["sjd window=8"].baseline == "ar"
    assert rows["sjd window=8"].tokens_per_pass > 1
    assert len(rows["sjd window=8"].acceptance) == 24
    assert f"{len(suite.runs())} of {len(suite.runs())} runs (complete)" in report
    for label in rows:
        assert f"| `{label}` | 8 |" in report
    assert f"| {rows['sjd window=8'].compression:.2f}x |" in report
    assert "n/a: no evaluator" in report
    for word in ("python", "torch", "transformers", "AMD" if "AMD" in report else "cpu", "torch_threads"):
        assert word in report
    assert (tmp_path / "toy-acceptance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![accepted tokens by position](toy-acceptance.png)" in report


def test_a_partial_run_is_reported_as_incomplete(tmp_path):
    suite = toy_suite()
    run(suite, tmp_path, shard=Shard(0, 2))
    report = build_report(tmp_path).read_text()
    assert "INCOMPLETE" in report and "| 2/4 |" in report


def test_compare_shows_old_to_new_with_relative_change(tmp_path):
    run(toy_suite(windows=(4,)), tmp_path / "old")
    run(toy_suite(windows=(8,)), tmp_path / "new")
    text = compare_dirs(tmp_path / "old", tmp_path / "new")
    assert "`sjd window=8` (new)" in text and "`sjd window=4` (removed)" in text
    assert "| `ar` | 24.0 → 24.0 (+0.0%) | 1.00x → 1.00x (+0.0%) |" in text


# --- quality ------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class PictureToy(ToyBackbone):
    """The toy backbone with an image decoder: one grey level per token."""

    name = "picturetoy"

    def images(self, tokens, session):
        level = tokens.float() / (self.vocab_size - 1)
        return level.repeat_interleave(2, 1)[:, :28, None].expand(-1, -1, 28).clamp(0, 1)


@attrs.define
class MeanJudge:
    """Agreement: images brighter than half; 'Frechet distance': 10 x mean brightness."""

    def accepts(self, prompt):
        return True

    def evaluate(self, images, prompts):
        means = images.astype(float).mean(axis=(1, 2, 3)) / 255
        return Quality(len(images), float((means > 0.5).mean()), float(10 * means.mean()))

    def real_spread(self, n):
        return None


def judges(name):
    return MeanJudge() if name == "picturetoy" else None


def test_images_are_stored_compactly_and_judged_per_setting(tmp_path):
    plugins().backbones.register_from("tests")("picturetoy", PictureToy)
    suite = toy_suite(backbone="picturetoy")
    run(suite, tmp_path, judges=judges)
    records = ResultsDir(tmp_path).records()
    packed = records[0]["images"]
    assert unpack_images(packed).shape == (3, 28, 28, 1)
    [summary] = summarize(suite, records, judges)
    rows = {r.setting: r for r in summary.settings}
    assert rows["ar"].quality.n == 2 * 2 * 3 and set(rows["ar"].seed_quality) == {0, 1}
    assert rows["ar"].check == "reference"
    assert rows["jacobi window=4 temperature=0"].check == "matches AR"  # greedy Jacobi = greedy AR, exactly
    report = build_report(tmp_path, judges=judges).read_text()
    assert "(n=12)" in report and "Quality across seeds" in report
    assert (tmp_path / "picturetoy-compression-quality.png").is_file()


def test_pack_images_round_trips_tensors_and_arrays():
    images = torch.rand(2, 28, 28)
    back = unpack_images(json.loads(json.dumps(pack_images(images))))
    assert back.dtype == np.uint8 and back.shape == (2, 28, 28, 1)
    assert np.abs(back[..., 0] / 255 - images.numpy()).max() <= 0.5 / 255 + 1e-6


def test_lossless_check_uses_ars_spread_across_seeds():
    q = lambda a, f: Quality(10, a, f)  # noqa: E731
    ar = {0: q(0.8, 10.0), 1: q(0.9, 12.0), 2: q(0.85, 11.0)}
    assert lossless_check(True, False, {0: q(0.86, 11.5), 1: q(0.84, 10.5)}, ar) == "matches AR"
    verdict = lossless_check(True, False, {0: q(0.3, 11.0), 1: q(0.35, 11.0)}, ar)
    assert verdict.startswith("DIFFERS: agreement -0.")
    assert lossless_check(False, False, {0: q(0.3, 11.0)}, ar) == "lossy: not checked"
    assert lossless_check(True, False, {0: q(0.8, 10.0)}, {0: q(0.8, 10.0)}) == "n/a: needs >= 2 seeds"
    assert lossless_check(True, False, {0: q(0.8, 10.0)}, None) == "n/a: no AR at the same sampling"
    # identical per-seed agreement on both sides: no spread to test a difference against
    flat = lossless_check(True, False, {0: q(0.85, 11.5), 1: q(0.85, 10.5)}, {0: q(0.9, 10.0), 1: q(0.9, 12.0)})
    assert flat == "n/a: no spread across seeds in agreement"


@pytest.mark.parametrize(
    "ar, mine", [([0.8, 0.9, 0.85], [0.86, 0.84]), ([1.0, 3.0, 2.5], [2.0, 1.0]), (list(range(20)), list(range(5, 30)))]
)
def test_t_tolerance_is_where_a_pooled_t_test_reaches_p_005(ar, mine):
    stats = pytest.importorskip("scipy.stats")
    tolerance = t_tolerance(ar, mine)
    shifted = np.asarray(mine, float) - np.mean(mine) + np.mean(ar) + tolerance  # same spread, difference = tolerance
    p = stats.ttest_ind(shifted, ar, equal_var=True).pvalue
    assert p == pytest.approx(0.05, abs=0.001 if len(ar) + len(mine) <= 32 else 0.005)
