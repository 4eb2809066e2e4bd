"""Options, their types and defaults are discoverable from the command line, not only from the source."""

import json

import pytest

from pardecode import list_plugins
from pardecode.cli import main, parser


def test_list_shows_every_option_with_its_type_and_default(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "options: window: int | str = 'auto', init: str = 'random', coupling: str = 'independent'" in out
    assert "steps: int = 4" in out and "dtype: str = 'float32'" in out
    assert "sjd_above" in out


def test_list_json_carries_the_options(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    sjd2 = next(e for e in listing["strategies"] if e["name"] == "sjd2")
    assert {"name": "sigma_max", "type": "float", "default": 10.0, "required": False} in sjd2["options"]


def test_the_api_listing_carries_the_options():
    listing = list_plugins()
    sjd = next(e for e in listing["strategies"] if e["name"] == "sjd")
    assert {"name": "window", "type": "int | str", "default": "auto", "required": False} in sjd["options"]
    toy = next(e for e in listing["backbones"] if e["name"] == "toy")
    assert {"name": "length", "type": "int", "default": 32, "required": False} in toy["options"]
    json.dumps(listing)  # what `pardecode list --json` prints


@pytest.mark.parametrize(
    "command,defaults",
    [
        (
            "generate",
            [
                "(default: the fastest exact setting for the batch",
                "(default: fashion)",
                "(default: 1)",
                "default: the backbone's reference setting",
            ],
        ),
        ("overhead", ["(default: sjd)", "(default: toy)", "(default: 32)"]),
    ],
)
def test_help_shows_the_defaults(capsys, command, defaults):
    with pytest.raises(SystemExit):
        parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in defaults:
        assert default in text
