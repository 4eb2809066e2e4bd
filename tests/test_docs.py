"""The documentation a newcomer follows is complete and runs."""

import itertools
import re
from pathlib import Path

import attrs

from pardecode import decode
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.backbone import Scores, Session, Window
from pardecode.core.plugins import Plugins
from pardecode.core.strategy import DecodeContext
from pardecode.core.trace import Trace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin" / "src" / "pardecode_echo.py"


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of every row of the first markdown table whose header row starts with `header`."""
    lines = text[text.index(header) :].splitlines()
    assert lines[1].startswith("|---"), f"no table under {header!r}"
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[2:])
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in rows]


def test_relative_links_resolve_and_reach_the_suite_format_and_the_strategy_guide():
    readme = (ROOT / "README.md").read_text()
    assert "](pardecode/benchmarks/README.md)" in readme and "](docs/strategies.md)" in readme
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_session_contract_names_everything_the_loop_uses():
    contract = (ROOT / "docs" / "adapters.md").read_text()
    session = [n for n in vars(Session) if not n.startswith("_")] + list(Session.__annotations__)
    window = [f.name for f in attrs.fields(Window)]
    scores = [f.name for f in attrs.fields(Scores)]
    for name in [
        *(f"Session.{n}" for n in session),
        *(f"window.{n}" for n in window if n != "first"),
        *(f"Scores.{n}" for n in scores),
    ]:
        assert name in contract, f"docs/adapters.md does not document {name}"
    assert "W + 1 logits" in contract and "per generation row" in contract
    assert "with_checkpoint_noise(root)" in contract  # how a plugin backbone loads the noise module


def test_the_strategy_guide_documents_the_context_and_the_trace_and_its_example_runs():
    guide = (ROOT / "docs" / "strategies.md").read_text()
    for f in attrs.fields(DecodeContext):
        assert f"`{f.name}`" in guide or f"`{f.name}(" in guide, f"docs/strategies.md does not document {f.name}"
    for name in ("forward_passes", "widths", "committed", "tokens_per_pass"):
        assert f"`{name}`" in guide and (hasattr(Trace, name) or name in Trace.__annotations__)
    namespace = {}
    exec(re.search(r"```python\n(.*?)```", guide, re.S).group(1), namespace)
    backbone = ToyBackbone(vocab_size=5, grid=(3, 4))
    result = decode(backbone, namespace["Echo"](window=3), ["ab", "c"], seed=0)
    assert bool(backbone.layout().is_valid(result.tokens).all()) and result.trace.forward_passes < 32


def test_the_readme_is_short_and_keeps_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
    assert "](docs/results.md)" in readme and "](docs/design.md)" in readme


def test_the_readme_strategy_table_lists_every_registered_strategy():
    rows = table_rows((ROOT / "README.md").read_text(), "| strategy | output | paper |")
    listed = [re.fullmatch(r"`([a-z0-9_]+)`", row[0]).group(1) for row in rows]
    assert sorted(listed) == Plugins(load_entry_points=False).strategies.names()
    for name, output, paper, what in rows:
        assert output == "exact" or output.startswith(("exact (", "lossy")), f"{name}: output {output!r}"
        assert paper == "-" or re.fullmatch(r"arXiv \d{4}\.\d{4,5}", paper), f"{name}: paper {paper!r}"
        assert what, f"{name} says nothing about what it does"


def test_the_plugin_example_shown_is_the_example_package_code():
    example = EXAMPLE.read_text()
    for page in (ROOT / "README.md", ROOT / "docs" / "strategies.md"):
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
        shown = [b for b in blocks if "class Echo(" in b]
        assert len(shown) == 1 and shown[0] in example and "def pardecode_register_strategies" in shown[0], page.name
    entry = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    assert entry in (ROOT / "examples" / "plugin" / "pyproject.toml").read_text()
