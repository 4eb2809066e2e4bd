"""The default a user gets: the exact setting the cost profile predicts fastest, and the race with AR."""

import json
import os
import subprocess
import sys

import pytest
import torch

from pardecode import choose_strategy, decode, get_strategy
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.cost import CostProfile
from pardecode.planning import EXACT_SETTINGS, fastest_exact, setting_label

WINDOWS = (0, 1, 2, 4, 8)
KEY = {"backbone": "toy"}


def profile(seconds, tokens=(1.0, 1.5, 1.9, 2.4, 2.8), tokens_by=None):
    return CostProfile(dict(KEY), (1,), WINDOWS, [seconds], tokens, tokens_by or {})


def test_dear_windows_choose_ar_and_cheap_ones_the_best_calibrated_setting():
    dear = fastest_exact(profile([1.0, 3.0, 5.0, 9.0, 17.0]), rows=1)
    assert dear.label == "ar" and dear.strategy.name == "ar" and dear.speedup == 1.0
    cheap = [1.0, 1.01, 1.02, 1.04, 1.08]
    better = (1.0, 1.6, 2.2, 2.9, 3.6)
    for label in EXACT_SETTINGS:
        choice = fastest_exact(profile(cheap, tokens_by={label: better}), rows=1)
        assert choice.label == label and choice.window == 8 and choice.speedup == pytest.approx(3.6 / 1.08)
        assert choice.strategy.window == "auto" and setting_label(choice.strategy) == label
    uncalibrated = fastest_exact(profile(cheap), rows=1)
    assert uncalibrated.label == "sjd_pac"  # every setting ranks by the reference: the first listed
    assert "the fastest exact setting for this batch" in uncalibrated.describe()


def test_setting_labels_name_a_coupling_only_where_it_is_not_the_default():
    assert setting_label(get_strategy("sjd")) == "sjd"
    assert setting_label(get_strategy("sjd", coupling="maximal")) == "sjd:maximal"
    assert setting_label(get_strategy("sjd_pac")) == "sjd_pac"  # maximal coupling is its own default
    assert setting_label(get_strategy("ar")) == "ar"


def test_a_decode_without_a_strategy_runs_the_choice_with_its_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path))
    backbone = ToyBackbone(vocab_size=4, grid=(4, 6), seed=1, sharpness=3.0)
    cheap = profile([1.0, 1.01, 1.02, 1.04, 1.08], tokens_by={"sjd:gumbel": (1.0, 1.6, 2.2, 2.9, 3.6)})
    chosen = decode(backbone, None, ["ab", "cd"], seed=0, profile=cheap)
    named = decode(
        backbone,
        get_strategy("sjd", coupling="gumbel", window="auto"),
        ["ab", "cd"],
        seed=0,
        profile=cheap.for_setting("sjd:gumbel"),
    )
    assert torch.equal(chosen.tokens, named.tokens) and chosen.trace.widths == named.trace.widths
    assert chosen.forward_passes < chosen.tokens.shape[1]
    with pytest.raises(Exception, match="strategy_options only apply"):
        decode(backbone, None, ["ab"], strategy_options={"window": 2}, profile=cheap)
    assert choose_strategy(backbone, 2).source == "prior"  # nothing stored: the generic prior, no measuring


def run(*args, env_dir):
    env = {**os.environ, "PARDECODE_CACHE": str(env_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pardecode.cli", *args], capture_output=True, text=True, env=env)


def test_race_times_ar_and_the_chosen_setting_in_one_run(tmp_path):
    proc = run(
        "race", "--backbone", "toy", "--prompt", "ab", "--batch", "2", "--rounds", "2", "--json", env_dir=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    other = report["strategy"]
    assert set(report["seconds_median"]) == {"ar", other} and report["forward_passes"]["ar"] == 32
    assert report["speedup"] == pytest.approx(
        report["seconds_median"]["ar"] / report["seconds_median"][other], rel=1e-2
    )
    assert "chosen" in report and 0 < report["setup_seconds"] < 60  # loading and choosing, before any decode
    named = run(
        "race",
        "--backbone",
        "toy",
        "--prompt",
        "ab",
        "--strategy",
        "sjd",
        "--window",
        "4",
        "--rounds",
        "1",
        env_dir=tmp_path,
    )
    assert named.returncode == 0 and "sjd is" in named.stdout and "as fast as AR (set-up" in named.stdout
    same = run("race", "--backbone", "toy", "--prompt", "ab", "--strategy", "ar", env_dir=tmp_path)
    assert same.returncode == 2 and "nothing to race" in same.stderr


@pytest.mark.slow
def test_race_on_the_default_model_writes_both_grids(tmp_path):
    from PIL import Image

    out = tmp_path / "race.png"
    proc = run(
        "race",
        "--prompt",
        "a sneaker",
        "--strategy",
        "sjd",
        "--window",
        "8",
        "--batch",
        "2",
        "--rounds",
        "1",
        "--out",
        str(out),
        "--json",
        env_dir=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    width, height = Image.open(out).size
    assert height > width / 2  # two rows (AR's, then the other setting's) of two images
