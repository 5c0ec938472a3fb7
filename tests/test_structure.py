"""The house rules that code review would otherwise have to remember: imports inside `src/` run one way (no cycle,
function-level imports included), docs/ARCHITECTURE.md names every module there is and no other, and nothing in the
package points at files outside the repository."""

import ast
import pathlib
import re

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "hare_tortoise"


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its file (a package's own submodules importing the
    package's __init__ do not count: Python runs that __init__ first anyway)."""
    known = modules()
    graph = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            graph[name] |= {t for t in targets if t in known and t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "hare_tortoise.presets" in graph["hare_tortoise.cli"]  # the graph sees real imports
    assert cycles(graph) == []


def test_the_core_does_not_import_the_engine():
    """core, methods, metrics, tracing, tensors and flat: torch only, and never the loops, data, runs or reports."""
    graph = import_graph()

    def layer(module: str) -> str:
        return (module.split(".") + [""])[1]

    core = {m for m in graph if layer(m) in ("core", "flat", "tensors", "tracing", "metrics", "methods")}
    engine = {m for m in graph if layer(m) in ("train", "runs", "data", "report", "sweep", "cli", "rl", "presets")}
    reached, frontier = set(), set(core)
    while frontier:
        reached |= frontier
        frontier = {t for m in frontier for t in graph[m]} - reached
    assert not reached & engine


def test_nothing_in_the_package_points_outside_the_repository():
    outside = re.compile(r"PAPER\.md|DESIGN\.md|shared/|(?<!docs/)\b(RL|CONTINUAL)\.md")
    hits = [f"{path.relative_to(SRC)}:{n}" for path in PACKAGE.rglob("*.py")
            for n, line in enumerate(path.read_text().splitlines(), 1) if outside.search(line)]
    assert hits == []
    for doc in set(re.findall(r"docs/[A-Z]+\.md", "".join(p.read_text() for p in PACKAGE.rglob("*.py")))):
        assert (SRC.parent / doc).exists(), f"the package cites {doc}, which does not exist"


def test_the_architecture_document_names_every_module_and_no_other():
    text = (SRC.parent / "docs" / "ARCHITECTURE.md").read_text()
    mentioned = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*(?:\.py|/))`", text))
    top = {p.name + "/" if p.is_dir() else p.name for p in PACKAGE.iterdir()
           if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and not p.name.startswith("__"))}
    assert top <= mentioned, f"not in docs/ARCHITECTURE.md: {sorted(top - mentioned)}"
    files = {str(p.relative_to(PACKAGE)) + ("/" if p.is_dir() else "") for p in PACKAGE.rglob("*")}
    for name in mentioned:
        exists = (SRC.parent / name).exists() or any(f == name or f.endswith("/" + name) for f in files)
        assert exists, f"docs/ARCHITECTURE.md names {name}, which does not exist"
