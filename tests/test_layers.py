"""The library's layers point one way: a module imports only from layers below its own (imports
inside functions count too), so there is no cycle and no reaching up. A new module must be
placed in LAYERS, which is also the order docs/development.md describes."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "adapterflow"
#: Lowest first. Each entry is a module or subpackage directly under adapterflow.
LAYERS = [
    "errors", "io", "logs", "provenance", "runtime", "schema", "settings", "models", "lms",
    "download", "data", "train", "eval", "generate", "report", "plots", "config",
    "config_reference", "cli", "steps", "__main__",
]  # fmt: skip


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "adapterflow"


def imports(path: Path) -> set[str]:
    """The adapterflow modules ``path`` imports, anywhere in the file."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level:
            base = package[: len(package) - node.level + 1]
            found.add(".".join([*base, node.module]))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "adapterflow"}


def test_every_module_has_a_layer():
    units = {
        _unit(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent != PACKAGE
    }
    assert units <= set(LAYERS), f"place {sorted(units - set(LAYERS))} in LAYERS"


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        own = _unit(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for name in imports(path):
            other = _unit(name)
            if other in (own, "adapterflow"):  # the package root holds only the version
                continue
            if LAYERS.index(other) > LAYERS.index(own):
                upward.append(f"{path.relative_to(REPO)} imports {name} ({own} < {other})")
    assert upward == []
