"""The package's import graph: no cycles (function-local imports count) and dependencies pointing
one way, recipes -> cli -> training/hub -> algos/planning/evaluation -> models -> data."""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "seqrl"

# a module may import its own layer or lower ones (by the longest matching prefix)
LAYERS = {
    "seqrl.version": 0, "seqrl.resources": 0, "seqrl.config": 0, "seqrl.threads": 0, "seqrl.cpu": 0, "seqrl.data": 0,
    "seqrl.models": 1,
    "seqrl.algos": 2, "seqrl.planning": 2, "seqrl.evaluation": 2, "seqrl.plotting": 2,
    "seqrl.hub": 3, "seqrl.training": 3,
    "seqrl.cli": 4, "seqrl": 4,  # the package itself: the public API (from_pretrained, ...)
}


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    mods = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The seqrl modules `name` imports anywhere in its file (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known(target: str) -> str:
        while target and target not in mods:
            target = target.rpartition(".")[0]
        return target

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {known(a.name) for a in node.names if a.name.split(".")[0] == "seqrl"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            if base.split(".")[0] != "seqrl":
                continue
            for alias in node.names:  # `from seqrl.data import families` imports the submodule
                full = f"{base}.{alias.name}"
                found.add(full if full in mods else known(base))
    return found - {name, ""}


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(name: str) -> int:
    prefix = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def test_no_import_cycles():
    assert cycles(import_graph(module_files())) == []


def test_dependencies_point_downward():
    upward = [f"{a} -> {b}" for a, deps in import_graph(module_files()).items() for b in deps if layer(b) > layer(a)]
    assert upward == []


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The walker sees function-local imports: a planted cycle through one is found."""
    pkg = tmp_path / "seqrl"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("from seqrl.data import b\n")
    (pkg / "data" / "b.py").write_text("def f():\n    from seqrl.data.a import x\n    from seqrl.hub import y\n")
    (pkg / "hub.py").write_text("")
    graph = import_graph(module_files(pkg))
    assert cycles(graph) == [["seqrl.data.a", "seqrl.data.b"]]
    assert "seqrl.hub" in graph["seqrl.data.b"] and layer("seqrl.hub") > layer("seqrl.data.b")


FILE_CALLS = {"open", "save_file", "load_file", "safe_open", "write_text", "read_text", "write_bytes", "read_bytes"}


def file_calls(path: Path) -> list[str]:
    """Calls in a module that read or write files (by the called name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = getattr(f.value, "id", "") if isinstance(f, ast.Attribute) else ""
            if name in FILE_CALLS or (owner == "torch" and name in ("save", "load")):
                found.append(f"{owner + '.' if owner else ''}{name} (line {node.lineno})")
    return found


def test_algorithms_do_no_file_io():
    """Saving and loading live in seqrl.hub; an algorithm or network never opens a file."""
    mods = module_files()
    offenders = {m: file_calls(p) for m, p in mods.items() if m.startswith(("seqrl.algos", "seqrl.models.nets"))}
    assert {m: c for m, c in offenders.items() if c} == {}
    assert file_calls(mods["seqrl.hub"])  # the walker does see file I/O where it is
