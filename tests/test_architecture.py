"""The package's structure: its import graph (read from the modules' source, every
``import`` statement, function-level ones included) flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "neural_networks"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = PACKAGE.parent.joinpath(*name.split("."))
    return relative.with_suffix(".py").is_file() or (relative / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every neural_networks module ``path`` imports (``from . import x`` counts x when
    it is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("neural_networks")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("neural_networks"):
                target = node.module
            else:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if node.module or not is_module(submodule):
                    found.add(target)  # a name defined in ``target`` (its __init__ for a package)
                found.add(submodule)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = {target for target in imports_of(path) if target in modules and target != name}
        # importing a.b.c also runs a.b's __init__: a package depends on nothing by that
        edges[name] = targets
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str):
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle():
    # package __init__ files re-export their submodules; leave their own edges out of
    # the check, except that no submodule may import the top-level package back
    edges = graph()
    modules = {name: targets for name, targets in edges.items() if not name.endswith("__init__")}
    flat = {name: {t for t in targets if not PACKAGE.joinpath(*t.split(".")[1:], "__init__.py").exists()}
            for name, targets in modules.items()}
    cycle = find_cycle(flat)
    assert cycle is None, " -> ".join(cycle)
    assert not [name for name, targets in edges.items() if "neural_networks" in targets and name != "neural_networks"]


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("lower, upper", [
    ("neural_networks.serialization", "neural_networks.models"),
    ("neural_networks.training", "neural_networks.models"),
    ("neural_networks.layers.base", "neural_networks.models"),
    ("neural_networks.layers.base", "neural_networks.training"),
    ("neural_networks.activations", "neural_networks.layers"),
    ("neural_networks.losses", "neural_networks.layers"),
    ("neural_networks.utils.validation", "neural_networks.layers"),
    ("neural_networks.utils", "neural_networks.layers"),
    ("neural_networks.utils.convolution", "neural_networks.layers"),
    ("neural_networks.models", "neural_networks.cli"),
])
def test_lower_modules_never_import_upper_ones(lower, upper):
    edges = graph()
    reachable, todo = set(), [lower]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in reachable:
                reachable.add(target)
                todo.append(target)
    assert not {t for t in reachable if t == upper or t.startswith(upper + ".")}, \
        f"{lower} reaches {upper}"


def test_no_module_probes_a_layer_with_hasattr():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr":
                target = ast.unparse(node.args[0])
                if "layer" in target or "last" in target:
                    offenders.append(f"{path.name}: hasattr({target}, ...)")
    assert not offenders
