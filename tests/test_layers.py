"""The package's import graph: no circles, and no import from a lower layer to a higher one.

Layers, lowest first (README, "Architecture"): the contracts (top-level modules, with the dataset
contract and sources under ``datasets/``), ``learn/`` (training helpers that plugins may use), the plugins
(``attacks/``, ``defenses/``, ``victims/``), ``run/``, ``board/``, ``commands/`` (with ``__main__`` and ``api``). A module may import its own layer and the layers below it. The
graph is read with :mod:`ast` from the source, imports inside functions included, so nothing is run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "robustbench_skel"
ROOT = Path(__file__).resolve().parents[1]
# where each part of the package lives in the checkout (the plugin folders install inside the package)
SOURCES = {PACKAGE: ROOT / PACKAGE, **{f"{PACKAGE}.{p}": ROOT / p for p in ("attacks", "defenses", "victims")}}
LAYERS = ("contracts", "learn", "plugins", "run", "board", "commands")
GROUPS = {"attacks": "plugins", "defenses": "plugins", "victims": "plugins", "datasets": "contracts",
          "learn": "learn", "run": "run", "board": "board", "commands": "commands"}

# Imports that run from a lower layer to a higher one and stay, each with its reason (at most two).
ALLOWED_UPWARD = {
    # The Python API (``robustbench_skel.load_victim``, ``benchmark``, ``load_results``, ...; README) is an
    # entry point; the package imports it lazily, on first use of one of its names.
    ("robustbench_skel", "robustbench_skel.api"),
}


def modules() -> dict[str, Path]:
    """Every module of the package (plugin folders included), by dotted name."""
    found = {}
    for name, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([name, *parts])] = path
    return found


def layer(module: str) -> str:
    """The layer of a dotted module name: its group folder's, else a contract."""
    parts = module.split(".")
    if parts[1:] in (["__main__"], ["api"]):
        return "commands"  # ``python -m robustbench_skel`` and the Python API are entry points
    return GROUPS.get(parts[1], "contracts") if len(parts) > 1 else "contracts"


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that ``module`` imports anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from package import submodule`` depends on the submodule
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != module)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_the_graph_is_read_from_the_whole_package():
    graph = import_graph()
    assert {"robustbench_skel.attack", "robustbench_skel.run.runner", "robustbench_skel.board.leaderboard",
            "robustbench_skel.commands.cli", "robustbench_skel.learn.training", "robustbench_skel.attacks.pgd",
            "robustbench_skel.datasets.base"} <= set(graph)
    # an import inside a function counts: the CLI imports the runner only where a command needs it
    assert "robustbench_skel.run.runner" in graph["robustbench_skel.commands.cli"]


def test_the_cycle_finder_finds_a_planted_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    assert len(ALLOWED_UPWARD) <= 2
    upward = sorted((a, b) for a, targets in import_graph().items() for b in targets
                    if LAYERS.index(layer(b)) > LAYERS.index(layer(a)))
    assert [edge for edge in upward if edge not in ALLOWED_UPWARD] == []
    assert set(upward) >= ALLOWED_UPWARD, "an allowed upward import is gone: drop it from ALLOWED_UPWARD"


def test_every_module_sits_in_a_named_layer():
    assert {layer(name) for name in import_graph()} == set(LAYERS)
