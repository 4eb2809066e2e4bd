"""Benchmark suites: TOML parsing, clear errors before anything runs, run order, fingerprints."""

import pytest

from pardecode import ConfigError, UnknownNameError
from pardecode.benchmarks.suite import Suite, builtin_suites, load_suite

BASE = """
name = "t"
prompts = ["a sneaker", "a dress"]
seeds = [0, 1]
batch = 2

[[backbones]]
name = "toy"

[[strategies]]
name = "ar"

[[strategies]]
name = "sjd"
grid = { window = [4, 8], init = ["random", "repeat"] }
"""


def write(tmp_path, text, name="suite.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parses_grid_and_orders_runs_seed_major_strategy_minor(tmp_path):
    suite = load_suite(write(tmp_path, BASE + "\n[[strategies]]\nname = 'jacobi'\nsampling = { temperature = 0 }\n"))
    labels = [s.label for s in suite.settings]
    assert labels == [
        "ar",
        "sjd window=4 init=random",
        "sjd window=4 init=repeat",
        "sjd window=8 init=random",
        "sjd window=8 init=repeat",
        "jacobi temperature=0",
    ]
    assert suite.settings[-1].sampling == {"temperature": 0}
    runs = suite.runs()
    assert len(runs) == 2 * 2 * 6
    # strategy settings innermost (interleaved), then prompts, then seeds
    assert [r.setting.label for r in runs[:6]] == labels
    assert {r.prompt for r in runs[:6]} == {"a sneaker"} and runs[6].prompt == "a dress"
    assert [r.seed for r in runs[::12]] == [0, 1]
    assert len({r.id for r in runs}) == len(runs)


def test_repeats_come_outermost(tmp_path):
    suite = load_suite(write(tmp_path, BASE.replace("batch = 2", "batch = 2\nrepeats = 3")))
    runs = suite.runs()
    per_repeat = len(runs) // 3
    assert [r.repeat for r in runs[::per_repeat]] == [0, 1, 2]


def test_sampling_is_overridable_per_suite_and_per_strategy(tmp_path):
    text = BASE.replace("batch = 2", "batch = 2\n[sampling]\ntop_k = 3\ncfg_scale = 2.0") + (
        "\n[[strategies]]\nname = 'ar'\nsampling = { temperature = 0 }\n"
    )
    suite = load_suite(write(tmp_path, text))
    by_label = {s.label: s for s in suite.settings}
    assert by_label["ar"].sampling == {"top_k": 3, "cfg_scale": 2.0}
    assert by_label["ar temperature=0"].sampling == {"top_k": 3, "cfg_scale": 2.0, "temperature": 0}


def test_a_strategy_may_run_on_some_backbones_only(tmp_path):
    text = (
        BASE
        + """
[[backbones]]
name = "toy"
label = "toy-noisy"
options = { noise_dim = 4 }

[[strategies]]
name = "sjd2"
params = { window = 4 }
backbones = ["toy-noisy"]
"""
    )
    suite = load_suite(write(tmp_path, text))
    on = {(r.backbone, r.setting.strategy) for r in suite.runs()}
    assert ("toy-noisy", "sjd2") in on and ("toy", "sjd2") not in on and ("toy", "ar") in on
    assert {s.strategy for s in suite.with_backbone("toy").settings if s.runs_on("toy")} == {"ar", "sjd", "sjd2"}
    with pytest.raises(
        ConfigError, match=r"names backbones \['nope'\]; the suite's backbones are \['toy', 'toy-noisy'\]"
    ):
        load_suite(write(tmp_path, text.replace('["toy-noisy"]', '["nope"]')))


def test_fingerprint_ignores_name_but_not_content(tmp_path):
    a = load_suite(write(tmp_path, BASE, "a.toml"))
    b = load_suite(write(tmp_path, BASE.replace('name = "t"', 'name = "other"'), "b.toml"))
    c = load_suite(write(tmp_path, BASE.replace("seeds = [0, 1]", "seeds = [0, 2]"), "c.toml"))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert Suite.from_dict(a.to_dict()).fingerprint == a.fingerprint  # what suite.json stores round trips
    assert a.with_backbone("toy", {"length": 8}).fingerprint != a.fingerprint


@pytest.mark.parametrize(
    "change, message",
    [
        (("batch = 2", "batch = 2\nwindow = 3"), r"unknown key\(s\) \['window'\]"),
        (("batch = 2", "batch = 0"), "batch must be an integer >= 1, got 0"),
        (("batch = 2", "batch = 2\nrepeats = -1"), "repeats must be an integer >= 1, got -1"),
        (("batch = 2", "batch = 2\nwarmup = 0"), "warmup must be an integer >= 1, got 0"),
        (("window = [4, 8]", "window = []"), "grid 'window' must be a non-empty list"),
        (("window = [4, 8]", "window = 4"), "grid 'window' must be a non-empty list"),
        (("window = [4, 8]", "window = [4, 4]"), "repeats a value"),
        (("window = [4, 8]", "window = [0]"), "window must be an integer >= 1 or 'auto', got 0"),
        (("init = [", "flavour = ["), "flavour"),
        (('name = "sjd"', 'name = "sjd"\nparams = { window = 4 }'), r"both in params and in grid"),
        (('name = "ar"', 'name = "ar"\nsampling = { temprature = 0 }'), r"unknown key\(s\) \['temprature'\]"),
        (('name = "ar"', 'name = "ar"\nsampling = { temperature = -1 }'), "temperature must be a finite number >= 0"),
        (("seeds = [0, 1]", "seeds = []"), "seeds must be a non-empty list"),
        (("seeds = [0, 1]", "seeds = [0, 0]"), "seeds repeats a value"),
        (("seeds = [0, 1]", "seeds = [-1]"), "seeds must hold integers >= 0"),
        (('prompts = ["a sneaker", "a dress"]', 'prompts = [""]'), "prompts must hold non-empty strings"),
        (('[[backbones]]\nname = "toy"', '[[backbones]]\nname = "toy"\nflavour = 1'), r"backbones\[0\]: unknown key"),
        (('[[strategies]]\nname = "ar"', '[[strategies]]\nname = "ar"\n[[strategies]]\nname = "ar"'), "appears twice"),
    ],
)
def test_bad_suites_fail_with_a_clear_message(tmp_path, change, message):
    old, new = change
    assert old in BASE
    with pytest.raises(ConfigError, match=message):
        load_suite(write(tmp_path, BASE.replace(old, new, 1)))


@pytest.mark.parametrize(
    "change, kind",
    [
        (('name = "toy"', 'name = "nosuchbackbone"'), "backbone"),
        (('name = "ar"', 'name = "nosuchstrategy"'), "strategy"),
    ],
)
def test_unknown_names_list_the_known_ones(tmp_path, change, kind):
    with pytest.raises(UnknownNameError, match=f"unknown {kind}"):
        load_suite(write(tmp_path, BASE.replace(*change)))


def test_missing_sections_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['strategies'\]"):
        load_suite(write(tmp_path, BASE.split("[[strategies]]")[0]))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(write(tmp_path, "prompts = [", "broken.toml"))
    with pytest.raises(ConfigError, match="built-in suites: .*quick"):
        load_suite("no-such-suite")


def test_builtin_suites_load_and_name_strategies(tmp_path, monkeypatch):
    captions = tmp_path / "captions_val2017.json"  # the COCO suites read the user's captions file
    captions.write_text('{"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "caption": "a cat"}]}')
    monkeypatch.setenv("PARDECODE_COCO_CAPTIONS", str(captions))
    suites = builtin_suites()
    assert {"quick", "default"} <= set(suites)
    for name in suites:
        suite = load_suite(name)
        assert suite.name == name
        assert any(s.strategy == "ar" for s in suite.settings)
