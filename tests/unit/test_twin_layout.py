"""The twin's layout: its subpackages' modules import one another without a circle, each imports on its own.

The graph is read from the source (every ``import`` statement, also those inside functions and under
``TYPE_CHECKING``), so a circle that only a lazy import keeps from failing still counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ibconform.twin

TWIN = Path(ibconform.twin.__file__).resolve().parent
PACKAGE = "ibconform.twin"
ROOMS = ("apiserver", "controllers", "machines")


def room_modules(room: str) -> list[str]:
    return sorted(p.stem for p in (TWIN / room).glob("*.py") if p.stem != "__init__")


def imports_within(source: str, module: str, room: str, members: set[str]) -> set[str]:
    """The modules of ``room`` (by name) that the source of ``room.module`` imports, wherever the statement is."""
    prefix = f"{PACKAGE}.{room}"
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                      # relative: resolved against the module's own package
                parent = prefix.split(".")[: len(prefix.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target.startswith(prefix + "."):
                name = target[len(prefix) + 1:].split(".")[0]
                if name in members and name != module:
                    found.add(name)
    return found


def import_graph(room: str) -> dict[str, set[str]]:
    members = set(room_modules(room))
    return {m: imports_within((TWIN / room / f"{m}.py").read_text(), m, room, members) for m in sorted(members)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph (its first node repeated at the end), or None."""
    state: dict[str, int] = {}          # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == 1:
                return [*path[path.index(succ):], succ]
            if succ not in state and (cycle := visit(succ)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import ibconform.twin.apiserver.store\n"
        "from ibconform.twin.apiserver import rbac, tables as printers\n"
        "from . import patch\n"
        "from .selectors import parse_label_selector\n"
        "if TYPE_CHECKING:\n    from ibconform.twin.apiserver.request import ApiPath\n"
        "def later():\n    from ibconform.twin.apiserver.server import TwinEmulator\n"
        "from ibconform.twin.controllers import cluster\n"
    )
    members = {"store", "rbac", "tables", "patch", "selectors", "request", "server", "cluster", "api_twin"}
    assert imports_within(source, "api_twin", "apiserver", members) == {
        "store", "rbac", "tables", "patch", "selectors", "request", "server"}


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("room", ROOMS)
def test_no_import_circle_within(room):
    graph = import_graph(room)
    assert graph, f"no modules in {room}"
    cycle = find_cycle(graph)
    assert cycle is None, f"{PACKAGE}.{room} imports in a circle: {' -> '.join(cycle or ())}"


def test_the_api_server_knows_no_controllers():
    for path in sorted((TWIN / "apiserver").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not [n for n in names if n.startswith(f"{PACKAGE}.controllers")], path.name


# Each module is imported first, in a fresh interpreter, with the twin's own __init__ (which imports
# everything, in its order) replaced by a bare package: only what the module itself imports is loaded.
ALONE = """
import importlib, sys, types
twin = types.ModuleType("ibconform.twin")
twin.__path__ = [sys.argv[1]]
sys.modules["ibconform.twin"] = twin
importlib.import_module(sys.argv[2])
"""


def test_each_api_server_module_imports_alone():
    procs = {module: subprocess.Popen([sys.executable, "-c", ALONE, str(TWIN), f"{PACKAGE}.apiserver.{module}"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for module in room_modules("apiserver")}
    failed = {}
    for module, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        if proc.returncode:
            failed[module] = out.strip().splitlines()[-1:]
    assert not failed
