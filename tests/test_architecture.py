"""The house has floors: every import inside jaxflow (module level or inside a function) runs from a room to a room
on a lower floor, so there is no circle. The floors are stated in docs/conventions.md."""

import ast
import pathlib

import jaxflow

ROOT = pathlib.Path(jaxflow.__file__).parent
# lowest first; a room may import any room on a lower floor, none on its own or a higher one
FLOORS = [
    {"ot", "dynamics", "manifolds"},
    {"paths"},
    {"data"},
    {"nn", "sampling"},
    {"metrics", "couplings"},
    {"losses", "shapes"},
    {"train"},
]
FLOOR = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}


def _imports():
    """(importing room, imported room, file, line) for every jaxflow import between rooms."""
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if len(rel.parts) == 1:  # jaxflow/__init__.py and the private helpers sit above / below every room
            continue
        src = rel.parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module + "." + a.name for a in node.names] if node.module == "jaxflow" else [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "jaxflow" and len(parts) > 1 and not parts[1].startswith("_") and parts[1] != src:
                    yield src, parts[1], str(rel), node.lineno


def test_every_room_has_a_floor():
    rooms = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == set(FLOOR), f"rooms without a floor or floors without a room: {rooms ^ set(FLOOR)}"


def test_imports_only_run_down():
    upward = [f"{f}:{line}: {src} imports {dst}" for src, dst, f, line in _imports() if FLOOR[dst] >= FLOOR[src]]
    assert upward == [], "imports that run sideways or up:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import():
    """The scan is not vacuous: it finds the known downward imports (nn uses data's label helpers)."""
    edges = {(s, d) for s, d, _, _ in _imports()}
    assert ("nn", "data") in edges and ("train", "losses") in edges and ("paths", "ot") in edges
