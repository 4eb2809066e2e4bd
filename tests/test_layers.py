"""Which package may import which: read from the source's import statements (lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

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

