"""A broken third-party plugin is skipped with one line naming it; everything else keeps working."""

import json
import sys

import pytest

from pardecode import get_strategy, list_plugins
from pardecode.cli import main
from pardecode.core.errors import ConfigError, UnknownNameError
from pardecode.core.plugins import reset_plugins

NOT_A_STRATEGY = """
import pardecode

class Impostor:
    name = "impostor"

@pardecode.hookimpl
def pardecode_register_strategies(register):
    register("impostor", Impostor, "not a Strategy")
"""

RETURNS_A_DICT = """
import pardecode

@pardecode.hookimpl
def pardecode_register_strategies(register):
    register("wrong", lambda window=2: {"window": window}, "a factory returning a dict")
"""


def install(tmp_path, monkeypatch, name, source):
    """A distribution whose `pardecode` entry point is module `name` with `source`."""
    (tmp_path / f"{name}.py").write_text(source)
    info = tmp_path / f"{name}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[pardecode]\n{name} = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_a_plugin_that_fails_to_import_is_skipped_and_named(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "pd_broken", "raise ImportError('needs libfoo')\n")
    assert main(["list", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "pardecode: warning: plugin 'pd_broken' skipped: ImportError: needs libfoo\n"
    listing = json.loads(captured.out)
    assert listing["broken"] == [{"plugin": "pd_broken", "error": "ImportError: needs libfoo"}]
    assert {"ar", "sjd"} <= {e["name"] for e in listing["strategies"]}
    assert main(["generate", "--backbone", "toy", "--strategy", "ar", "--prompt", "hi"]) == 0
    reset_plugins()  # the Python API warns once, when it first reads the plugins
    with pytest.warns(UserWarning, match="plugin 'pd_broken' skipped"):
        names = [e["name"] for e in list_plugins()["strategies"]]
    assert "sjd" in names


def test_asking_for_a_strategy_of_a_skipped_plugin_says_why(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "pd_broken", "raise ImportError('needs libfoo')\n")
    assert main(["generate", "--backbone", "toy", "--strategy", "mine", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("pardecode: error: unknown strategy 'mine'")
    assert "plugin 'pd_broken' was skipped: ImportError: needs libfoo" in err[-1]


def test_a_registered_class_that_is_not_a_strategy_is_refused_at_registration(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "pd_impostor", NOT_A_STRATEGY)
    assert main(["list"]) == 0
    err = capsys.readouterr().err
    assert "plugin 'pd_impostor' skipped" in err and "Impostor is not a subclass of pardecode.Strategy" in err
    with pytest.raises(UnknownNameError, match="plugin 'pd_impostor' was skipped"):
        get_strategy("impostor")


def test_a_factory_that_builds_no_strategy_is_refused_by_name(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "pd_wrong", RETURNS_A_DICT)
    with pytest.raises(
        ConfigError, match="strategy 'wrong' \\(registered by pd_wrong\\) built a dict, not a pardecode.Strategy"
    ):
        get_strategy("wrong")
    assert main(["generate", "--backbone", "toy", "--strategy", "wrong", "--prompt", "hi"]) == 2
    assert "built a dict" in capsys.readouterr().err
