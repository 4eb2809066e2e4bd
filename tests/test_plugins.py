"""Third-party strategies arrive through the `pardecode` entry-point group, with no change here."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pardecode import SamplingConfig, decode, get_strategy, list_plugins
from pardecode.adapters.toy import ToyBackbone

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin" / "src" / "pardecode_echo.py"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """The example plugin as an installed distribution: its module plus a dist-info on sys.path."""
    shutil.copy(EXAMPLE, tmp_path / "pardecode_echo.py")
    info = tmp_path / "pardecode_echo-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pardecode-echo\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[pardecode]\necho = pardecode_echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("pardecode_echo", None)


def test_entry_point_strategy_is_listed_and_runs(installed_plugin):
    names = [e["name"] for e in list_plugins()["strategies"]]
    assert "echo" in names
    entry = [e for e in list_plugins()["strategies"] if e["name"] == "echo"][0]
    assert entry["plugin"] == "echo"  # registered by the external distribution, not pardecode
    backbone = ToyBackbone(vocab_size=5, grid=(3, 4), seed=0)
    result = decode(backbone, get_strategy("echo", window=3), ["ab", "c"], seed=0)
    assert backbone.layout().is_valid(result.tokens).all()
    greedy = SamplingConfig(temperature=0)
    assert torch.equal(
        decode(backbone, "echo", ["ab"], sampling=greedy).tokens, decode(backbone, "ar", ["ab"], sampling=greedy).tokens
    )


def test_cli_sees_the_plugin(installed_plugin):
    env = {**os.environ, "PYTHONPATH": str(installed_plugin)}
    out = subprocess.run(
        [sys.executable, "-m", "pardecode.cli", "list", "--json"], env=env, capture_output=True, text=True, check=True
    )
    listing = json.loads(out.stdout)
    assert {"ar", "jacobi", "sjd", "echo"} <= {e["name"] for e in listing["strategies"]}
    assert "toy" in {e["name"] for e in listing["backbones"]}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pardecode.cli",
            "generate",
            "--backbone",
            "toy",
            "--strategy",
            "echo",
            "--prompt",
            "hi",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(run.stdout)
    assert report["strategy"] == "echo" and report["image_tokens"] == 32 and 1 <= report["forward_passes"] <= 32


def test_without_the_plugin_it_is_absent():
    assert "echo" not in [e["name"] for e in list_plugins()["strategies"]]


def test_a_former_name_finds_the_entry_and_listings_show_names_only():
    from pardecode.core.errors import ConfigError, UnknownNameError
    from pardecode.core.plugins import STRATEGY_NAME, Registry, plugins
    from pardecode.strategies.sjd import SJD

    registry = Registry("strategy", None, pattern=STRATEGY_NAME)
    register = registry.register_from("mine")
    register("new_name", SJD, "a strategy", aliases=("old-name", "old_name"))
    assert registry.get("old-name") is registry.get("new_name") and registry.canonical("old_name") == "new_name"
    assert registry.names() == ["new_name"] and registry.get("new_name").aliases == ("old-name", "old_name")
    with pytest.raises(ConfigError, match="alias 'new_name' is already taken"):
        register("other", SJD, aliases=("new_name",))  # an alias may not shadow a name
    with pytest.raises(ConfigError, match="'old_name' registered twice .an alias of 'new_name'"):
        register("old_name", SJD)  # nor a name an alias
    with pytest.raises(ConfigError, match="lowercase letters, digits and underscores"):
        register("Fancy-SJD", SJD)
    with pytest.raises(UnknownNameError, match="known strategies: new_name$"):
        registry.get("missing")
    registry.drop("mine")
    assert not registry.entries and not registry.aliases
    builtin = plugins().strategies
    assert all(STRATEGY_NAME.fullmatch(n) for n in builtin.names()) and builtin.canonical("sjd-above") == "sjd_above"
