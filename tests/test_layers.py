"""Which package may import which: read from the source's import statements (lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pardecode"


def imports(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved to absolute names."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def modules_under(*parts: str) -> list[Path]:
    return sorted(PACKAGE.joinpath(*parts).rglob("*.py"))


def importers_of(target: str, paths: list[Path]) -> list[str]:
    return [str(p.relative_to(PACKAGE.parent)) for p in paths
            if any(name == target or name.startswith(target + ".") for name in imports(p))]


def test_nothing_below_the_command_line_imports_it():
    below = [p for p in modules_under() if PACKAGE / "cli" not in p.parents]
    assert importers_of("pardecode.cli", below) == []



@pytest.mark.parametrize("layer", ["core", "strategies", "adapters"])
def test_the_default_model_is_a_plugin_no_lower_layer_imports(layer):
    assert importers_of("pardecode.fashion", modules_under(layer)) == []


def test_the_default_model_registers_through_the_plugin_hook():
    from pardecode.core.plugins import plugins

    registered_by = {plugins().backbones.get(name).plugin for name in ("fashion", "fashion-sjd2")}
    assert registered_by == {"pardecode.fashion.plugin"}


def test_names_that_moved_to_the_default_models_plugin_still_import_from_the_adapters():
    from pardecode import adapters
    from pardecode.fashion import plugin

    for name in ("FASHION_DIR", "FASHION_SJD2_DIR", "load_fashion", "load_fashion_sjd2"):
        assert getattr(adapters, name) is getattr(plugin, name)
    with pytest.raises(AttributeError):
        adapters.FASHION_NOWHERE
