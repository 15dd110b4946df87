"""Where code lives: the packages in layers, each importing only its own and lower ones, no import cycles,
and nothing at the top of the package but the entry points. Read from the source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "e2e_him"
# lowest first; a package may import its own modules and those of lower layers, never a higher layer's or
# another package of its own layer
LAYERS = [
    {"utils"},
    {"data"},
    {"metrics"},
    {"models", "losses", "visual"},
    {"evaluation", "predictor", "callbacks"},
    {"web"},
]
ENTRY_POINTS = {"train", "eval", "predict", "export", "convert_release", "demo"}
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}
RANK.update(dict.fromkeys(ENTRY_POINTS, len(LAYERS)))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The e2e_him modules `path` imports anywhere (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "e2e_him":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from e2e_him.x import module`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "e2e_him")
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def part(module: str) -> str:
    """The package (or top-level module) a module belongs to: `e2e_him.models.release.band` -> `models`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "e2e_him"


def test_every_package_and_top_level_module_has_a_layer():
    assert {part(m) for m in MODULES} - {"e2e_him"} == set(RANK)


def test_the_top_of_the_package_holds_the_entry_points_and_little_else():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == ENTRY_POINTS | {"__init__"}
    # the package's own __init__ stands on the ground floor: it registers the resolvers, no more
    assert {part(m) for m in GRAPH["e2e_him"]} <= {"utils"}


def test_no_package_imports_a_higher_layer_or_a_sibling_of_its_layer():
    wrong = []
    for module, deps in GRAPH.items():
        if module == "e2e_him":
            continue
        own = part(module)
        for dep in deps:
            other = part(dep)
            if other in ("e2e_him", own):
                continue
            if RANK[other] >= RANK[own]:
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_utils_imports_nothing_of_ours_above_it():
    assert {
        dep for m, deps in GRAPH.items() if part(m) == "utils" for dep in deps if part(dep) != "utils"
    } == set()


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checks_see_real_imports():
    """The graph is read right: known arrows are there (so an empty list of wrong ones means something)."""
    assert "e2e_him.models.checkpoint" in GRAPH["e2e_him.eval"]
    assert "e2e_him.models.release.convert" in GRAPH["e2e_him.models.checkpoint"]  # inside a function
    assert "e2e_him.metrics.families" in GRAPH["e2e_him.evaluation.runner"]
