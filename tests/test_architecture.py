"""The house rules of ARCHITECTURE.md, checked on the code: every import of the package
(lazy ones inside functions included) goes to a lower floor, and no module uses another
module's private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mobiprox_lab"


def _floors() -> dict[str, int]:
    """{room: floor} from the table of ARCHITECTURE.md."""
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", (ROOT / "ARCHITECTURE.md").read_text(), re.M)
    return {room: int(floor) for floor, room in rows}


def _rooms(package: Path) -> set[str]:
    return {p.relative_to(package).with_suffix("").parts[0]
            for p in package.rglob("*.py")} - {"__init__", "__main__"}


def _reached(path: Path, package: Path) -> list[tuple[int, str]]:
    """(line, room) of every room a module imports, relative or absolute."""
    here = list(path.relative_to(package.parent).parent.parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            module = here[:len(here) - node.level + 1] + (node.module or "").split(".")
            module = [m for m in module if m]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package.name):
            module = node.module.split(".")
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names
                    if a.name.startswith(package.name + ".")]
            continue
        else:
            continue
        if len(module) > 1:
            out.append((node.lineno, module[1]))
        else:  # from the package itself: each imported name that is a room
            out += [(node.lineno, a.name) for a in node.names
                    if (package / a.name).is_dir() or (package / f"{a.name}.py").exists()]
    return out


def _violations(package: Path, floors: dict[str, int]) -> list[str]:
    wrong = []
    for path in sorted(package.rglob("*.py")):
        room = path.relative_to(package).with_suffix("").parts[0]
        if room in ("__init__", "__main__"):
            continue
        for line, target in _reached(path, package):
            if target != room and floors.get(target, 99) >= floors[room]:
                wrong.append(f"{path.relative_to(package.parent)}:{line} {room} (floor "
                             f"{floors[room]}) imports {target} (floor {floors.get(target)})")
    return wrong


def test_the_table_names_every_room():
    floors = _floors()
    assert _rooms(PACKAGE) - set(floors) == set(), "rooms missing from ARCHITECTURE.md"
    assert set(floors) - _rooms(PACKAGE) == set(), "ARCHITECTURE.md lists rooms the code lacks"


def test_imports_go_down_the_floors():
    wrong = _violations(PACKAGE, _floors())
    assert not wrong, "\n".join(wrong)


def test_the_floor_check_finds_an_upward_import(tmp_path):
    package = tmp_path / "mobiprox_lab"
    for room in ("kernels", "orchestration"):
        (package / room).mkdir(parents=True)
        (package / room / "__init__.py").write_text("")
    (package / "kernels" / "x.py").write_text(
        "def f():\n    from ..orchestration import tasks\n    from .. import orchestration\n")
    (package / "orchestration" / "y.py").write_text("from ..kernels import x\n")
    wrong = _violations(package, _floors())
    assert len(wrong) == 2 and all("kernels (floor 1) imports orchestration" in w for w in wrong)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_crosses_a_module():
    """``from .x import _y`` and ``x._y`` on an imported module are reach-ins. A package's
    own private modules (``from . import _loops`` inside ``control``) are its business."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                for a in node.names:
                    imported.add(a.asname or a.name)
                    sibling = (node.level == 1 and not node.module
                               and (path.parent / f"{a.name}.py").exists())
                    if _private(a.name) and not sibling:
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported and _private(node.attr)):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} reads "
                             f"{node.value.id}.{node.attr}")
    assert not wrong, "\n".join(wrong)
