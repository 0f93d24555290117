"""The package layers: no module imports one from a layer above its own.

producers < base (worker, settings, logs, connections, asgi, deadlines, coredumps) < store,
allmysms < send, callbacks < admin, gateway, sandbox < cli, jobs, dev. Every import counts:
top-level, inside functions, under ``TYPE_CHECKING``, relative, and ``importlib.import_module``
with a literal name.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("producers",),
    (
        "worker",
        "worker.settings",
        "worker.logs",
        "worker.connections",
        "worker.asgi",
        "worker.deadlines",
        "worker.coredumps",
    ),
    ("worker.store", "worker.allmysms"),
    ("worker.send", "worker.callbacks"),
    ("worker.admin", "worker.gateway", "worker.sandbox"),
    ("worker.cli", "worker.jobs", "worker.dev", "worker.__main__"),
)
"""Lowest first. A module belongs to the longest prefix listed (``worker.store.ledger`` to
``worker.store``, ``worker.py``'s own ``__init__`` to ``worker``)."""

SIDEWAYS: frozenset[tuple[str, str]] = frozenset(
    {
        ("worker.connections", "worker.settings"),
        ("worker.asgi", "worker.settings"),
        ("worker.asgi", "worker.deadlines"),
        ("worker.deadlines", "worker.settings"),
        ("worker.__main__", "worker.cli"),
        ("worker.cli", "worker.dev"),
        ("worker.callbacks", "worker.send.retries"),
    }
)
"""Imports allowed between two modules of the same layer, or of a named module from a lower
layer's sibling: (importer prefix, imported prefix). Everything else within a layer is fine only
inside one package."""


def layer_of(module: str) -> tuple[int, str]:
    """The layer index and the listed name a dotted module name falls under."""
    best: tuple[int, str] | None = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > len(best[1])
            ):
                best = (index, name)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS")
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module or name a source file imports."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{prefix}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def ours(name: str) -> bool:
    return name.split(".")[0] in {"producers", "worker"}


def sideways(importer: str, imported: str) -> bool:
    return any(
        (importer == a or importer.startswith(a + "."))
        and (imported == b or imported.startswith(b + "."))
        for a, b in SIDEWAYS
    )


def violations(root: Path) -> list[str]:
    found = []
    for package in ("producers", "worker"):
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            own_layer, own_name = layer_of(module)
            for line, name in imported_names(tree, module, path.name == "__init__.py"):
                if not ours(name):
                    continue
                layer, listed = layer_of(name)
                if layer < own_layer or listed == own_name:
                    continue
                if sideways(module, name):
                    continue
                where = "above" if layer > own_layer else "beside"
                found.append(
                    f"{module} imports {name} (layer {layer} {where} layer {own_layer})"
                    f" at {path.relative_to(root)}:{line}"
                )
    return found


def test_no_module_imports_from_a_higher_layer() -> None:
    assert violations(ROOT) == []


def test_every_module_is_in_a_layer() -> None:
    for package in ("producers", "worker"):
        for path in (ROOT / package).rglob("*.py"):
            layer_of(module_name(path, ROOT))  # raises for a module outside LAYERS


def test_layers_of_known_modules() -> None:
    assert layer_of("producers.keys") == (0, "producers")
    assert layer_of("worker") == (1, "worker")
    assert layer_of("worker.settings") == (1, "worker.settings")
    assert layer_of("worker.store.ledger") == (2, "worker.store")
    assert layer_of("worker.store.lua") == (2, "worker.store")
    assert layer_of("worker.allmysms.codes") == (2, "worker.allmysms")
    assert layer_of("worker.send.sender") == (3, "worker.send")
    assert layer_of("worker.admin.app") == (4, "worker.admin")
    assert layer_of("worker.cli.commands") == (5, "worker.cli")
    with pytest.raises(LookupError, match="redis is in no layer"):
        layer_of("redis")


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    for package in ("producers", "worker"):
        shutil.copytree(ROOT / package, tmp_path / package)
    control = tmp_path / "worker" / "store" / "control.py"
    source = control.read_text(encoding="utf-8")
    control.write_text(
        source + "\n\ndef _late() -> None:\n    from worker.send.sender import Sender  # noqa\n",
        encoding="utf-8",
    )
    lines = source.count("\n") + 4
    assert violations(tmp_path) == [
        "worker.store.control imports worker.send.sender.Sender (layer 3 above layer 2)"
        f" at worker/store/control.py:{lines}"
    ]


def test_a_sideways_import_between_packages_is_reported(tmp_path: Path) -> None:
    for package in ("producers", "worker"):
        shutil.copytree(ROOT / package, tmp_path / package)
    ledger = tmp_path / "worker" / "store" / "ledger.py"
    ledger.write_text(
        "from worker.allmysms import codes\n" + ledger.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    assert violations(tmp_path) == [
        "worker.store.ledger imports worker.allmysms.codes (layer 2 beside layer 2)"
        " at worker/store/ledger.py:1"
    ]


def test_relative_imports_are_resolved() -> None:
    tree = ast.parse("from . import rules\nfrom ..store.ledger import Ledger\n")
    assert list(imported_names(tree, "worker.sandbox.provider", is_package=False)) == [
        (1, "worker.sandbox.rules"),
        (2, "worker.store.ledger.Ledger"),
    ]


def test_the_admin_page_loads_neither_httpx_nor_tenacity() -> None:
    probe = (
        "import sys, worker.admin.app\n"
        "print(sorted(m for m in ('httpx', 'tenacity', 'worker.send.sender') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_test_modules_share_code_only_through_helpers() -> None:
    """A test module imports from ``tests.helpers``, never from another test module or the
    conftest (pytest loads those its own way)."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        module = module_name(path, ROOT)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, name in imported_names(tree, module, path.name == "__init__.py"):
            if name.startswith("tests.") and not name.startswith("tests.helpers."):
                found.append(f"{module} imports {name} at line {line}")
    assert found == []
