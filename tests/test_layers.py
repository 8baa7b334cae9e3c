"""Imports run one way: gateway <- detection <- drivers <- sim, and no module imports itself back.

The product's layers (README, "Layout"): `gateway` at the bottom knows no
device; `detection` turns frames into throws; `drivers` turn device signals
into events with both; `sim` simulates devices for all of them. A module may
import its own layer and those below, never one above, except the CLI, which
may import anything. Every import counts, also one inside a function or under
`TYPE_CHECKING`: a lazy import is still a dependency. An import cycle between
modules is refused too, lazy or not: it means two modules are one job. Only
an annotation's import (`if TYPE_CHECKING:`, never run) may point back at a
module of the same layer that imports this one, as a worker names its owner's
type.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("gateway", "detection", "drivers", "sim")      # bottom first
CLI_MODULES = frozenset({"gateway.cli"})
ALLOWED_UPWARD: set[tuple[str, str]] = set()    # (importer, imported) tolerated for a while, with why; none now


def product_modules(root: Path = REPO) -> dict[str, Path]:
    """Every module of the product packages: dotted name -> file."""
    modules: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks (imports for annotations, never run)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return ids


def imports_of(name: str, path: Path, known: set[str], type_checking: bool = True) -> dict[str, int]:
    """The product modules `name` imports (anywhere in the file), each with its first line;
    without `type_checking`, only the imports that run."""
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    annotations_only = set() if type_checking else _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:      # `import a.b.c` where only a.b is ours
                target = target.rpartition(".")[0]
            if target and target != name:
                found[target] = min(found.get(target, node.lineno), node.lineno)
    return found


def import_graph(root: Path = REPO, type_checking: bool = True) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    modules = product_modules(root)
    known = set(modules)
    return modules, {name: imports_of(name, path, known, type_checking) for name, path in modules.items()}


def upward_imports(graph: dict[str, dict[str, int]], modules: dict[str, Path],
                   root: Path = REPO) -> list[tuple[str, str, str]]:
    """(importer, imported, where) for every import of a higher layer outside the CLI."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    found = []
    for source, targets in graph.items():
        for target, line in targets.items():
            if rank[target.split(".")[0]] > rank[source.split(".")[0]] and source not in CLI_MODULES:
                found.append((source, target, f"{modules[source].relative_to(root)}:{line}"))
    return found


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def test_no_module_imports_a_higher_layer() -> None:
    modules, graph = import_graph()
    assert len(modules) > 50, "the product's modules were found"
    found = upward_imports(graph, modules)
    bad = [f"{where}: {source} imports {target}" for source, target, where in found
           if (source, target) not in ALLOWED_UPWARD]
    assert not bad, "imports against the layers (gateway <- detection <- drivers <- sim):\n" + "\n".join(bad)
    stale = ALLOWED_UPWARD - {(s, t) for s, t, _ in found}
    assert not stale, f"allowed upward imports that no longer exist (drop them from ALLOWED_UPWARD): {stale}"


def test_no_import_cycle_between_modules() -> None:
    _, graph = import_graph(type_checking=False)
    found = cycles(graph)
    assert not found, "modules importing each other (lazily or not):\n" + "\n".join(" <-> ".join(g) for g in found)


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The two checks above on a made-up tree: they are not vacuous."""
    files = {
        "gateway/__init__.py": "",
        "gateway/store.py": "def f():\n    from drivers.door import Door\n",
        "gateway/cli.py": "import sim.run\n",
        "detection/__init__.py": "",
        "drivers/__init__.py": "",
        "drivers/door.py": "from . import lock\nfrom gateway import store\n",
        "drivers/lock.py": "from drivers.door import Door\n",
        "drivers/worker.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from drivers.owner import Owner\n",
        "drivers/owner.py": "from drivers import worker\n",
        "sim/__init__.py": "",
        "sim/run.py": "import gateway.store\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules, graph = import_graph(tmp_path)
    assert graph["drivers.door"] == {"drivers.lock": 1, "gateway.store": 2}
    assert [(s, t) for s, t, _ in upward_imports(graph, modules, tmp_path)] == [("gateway.store", "drivers.door")]
    assert cycles(graph) == [["drivers.door", "drivers.lock", "gateway.store"],
                             ["drivers.owner", "drivers.worker"]]
    assert cycles(import_graph(tmp_path, type_checking=False)[1]) == [["drivers.door", "drivers.lock", "gateway.store"]]
