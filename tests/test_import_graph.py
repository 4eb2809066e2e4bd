"""The package's layers, read from its source: no import cycle, and no arrow pointing up.

Every `import` and `from ... import` in pardecode/ counts, including those inside functions (a
lazy import dodges a cycle at run time but is still a cycle to a reader), except those under
`if TYPE_CHECKING:`. `from package import name` counts as importing the submodule when `name` is
one. Rules (docs/design.md): core imports only core; strategies import no adapter and not the
default model; adapters do not import the default model; nothing but the cli imports the cli;
nothing imports the package root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "pardecode"


def module_name(path: Path) -> str:
    parts = ["pardecode", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> set[str]:
    """The pardecode modules `name` imports (explicitly)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "pardecode")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "pardecode":
                continue
            submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(target)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_the_graph_was_read():
    assert len(GRAPH) > 50 and "pardecode.core.passes.single_window" in GRAPH["pardecode.core.loop"]


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(GRAPH):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def _violations(importer_prefix: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    def inside(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    return sorted(
        f"{a} imports {b}"
        for a, targets in GRAPH.items()
        if inside(a, importer_prefix)
        for b in targets
        if any(inside(b, f) for f in forbidden) and not any(inside(b, ok) for ok in allowed)
    )


def test_core_imports_only_core():
    outside = tuple(sorted({m for m in MODULES if not m.startswith("pardecode.core")} - {"pardecode"}))
    assert _violations("pardecode.core", outside) == []
    assert not any("pardecode" in targets for name, targets in GRAPH.items()), "nothing imports the package root"


def test_strategies_know_no_model():
    assert _violations("pardecode.strategies", ("pardecode.adapters", "pardecode.fashion")) == []


def test_adapters_know_nothing_of_the_default_model():
    assert _violations("pardecode.adapters", ("pardecode.fashion",)) == []


def test_only_the_cli_imports_the_cli():
    importers = sorted(
        a
        for a, targets in GRAPH.items()
        if not a.startswith("pardecode.cli")
        and any(t == "pardecode.cli" or t.startswith("pardecode.cli.") for t in targets)
    )
    assert importers == []
