"""No import circle in lldmix_core or app: walk every `import` (module level and inside functions,
except under `if TYPE_CHECKING:`) and fail on a cycle, naming it.

Mutation seen caught: train.py importing `broadcast_object` from distributed.py again (distributed.py
imports train inside `follow()`), the circle this test was written for."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lldmix_core", "app")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):  # imports only for type checkers make no circle at run time
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `from a.b import c` where c is a name: the module a.b
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {name: _imports(path, name, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None. A package's own __init__ importing its
    submodules is no circle by itself: edges from a submodule to its parent package are ignored."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if n.startswith(m + "."):
                continue
            if colour.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if colour.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = 2
        return None

    for n in sorted(graph):
        if colour.get(n) is None:
            found = visit(n)
            if found:
                return found
    return None


def test_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "lldmix_core.engine.models" in graph and "lldmix_core.train" in graph["lldmix_core.engine.models"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_engines_parts_never_reach_back_into_the_engine():
    """The engine package (issue 22 item 2): its parts are handed their services and never import the
    `Engine` (core.py, or the package that exports it); services.py imports no part at all.

    Mutation seen caught: run_stages.py importing a helper from engine/core.py."""
    graph = import_graph()
    parts = {m for m in graph if m.startswith("lldmix_core.engine.")} - {"lldmix_core.engine.core"}
    assert {"lldmix_core.engine.run", "lldmix_core.engine.run_stages", "lldmix_core.engine.services"} <= parts
    for m in sorted(parts):
        back = graph[m] & {"lldmix_core.engine", "lldmix_core.engine.core"}
        assert not back, f"{m} imports {sorted(back)}: a part of the engine must not reach back into it"
        tree = ast.parse((ROOT / (m.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} \
            | {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert "Engine" not in named, f"{m} uses the Engine (even for a type)"
    assert not {d for d in graph["lldmix_core.engine.services"] if d.startswith("lldmix_core.engine")}
