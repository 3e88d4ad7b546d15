"""docs/architecture.md's module table says what each module imports; these tests hold it to the
code, and hold the code to its layering: no import cycles, nothing that steps build on imports
steps, the store imports nothing above it, and only the plugin reaches into the web app."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "plugins" / "tempo"
#: Rows whose imports column says "everything, on demand": the public API and the command line.
ON_DEMAND = "everything, on demand"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@cache
def imports_of(module: str) -> frozenset[str]:
    """The Tempo modules ``module`` imports, at the top or inside a function; not those it imports
    for type checking only."""
    found: set[str] = set()
    known = modules()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tempo"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tempo":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(known[module].read_text(encoding="utf-8")))
    return frozenset(found & set(known) - {module})


def _table_rows() -> list[tuple[list[str], str]]:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Where each concept lives", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in section.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        files = re.findall(r"`([^`]+)`", cells[0])
        rows.append((files, cells[2]))
    return rows


def _documented_modules(files: list[str]) -> list[str]:
    names = []
    for file in files:
        path = PACKAGE / file
        if file.endswith("/"):
            names += [m for m in modules() if m.startswith(_module_name(path / "__init__.py") + ".")]
        else:
            names.append(_module_name(path))
    return names


def _documented_imports(column: str, module: str) -> set[str]:
    """``store, mail, steps/resume, web/*`` as module names; other words (Airflow's) are not Tempo's."""
    names = set()
    package = module.rsplit(".", 1)[0]
    for token in re.split(r",\s*", column):
        token = re.sub(r"\s*\(.*\)$", "", token).removesuffix("/*").strip()  # "web (`URL_PREFIX`)"
        if not re.fullmatch(r"[a-z_]+(/[a-z_]+)*", token):
            continue  # "—", "Airflow's conf", "Airflow's models"
        dotted = token.replace("/", ".")
        for candidate in (f"tempo.{dotted}", f"{package}.{dotted}"):
            if candidate in modules():
                names.add(candidate)
                break
        else:
            raise AssertionError(f"{module}: the table names {token!r}, which is no module of tempo")
    return names


def _covered(imported: str, documented: set[str]) -> bool:
    return any(imported == name or imported.startswith(name + ".") for name in documented)


TABLE = [
    (module, column)
    for files, column in _table_rows()
    if column != ON_DEMAND
    for module in _documented_modules(files)
]


def test_the_table_names_every_module_once():
    named = [module for files, _ in _table_rows() for module in _documented_modules(files)]
    assert sorted(set(named)) == sorted(named)
    missing = sorted(set(modules()) - set(named) - {"tempo.mail", "tempo.steps", "tempo.store", "tempo.web"})
    assert missing == [], f"modules without a row in docs/architecture.md: {missing}"


@pytest.mark.parametrize(("module", "column"), TABLE, ids=[module for module, _ in TABLE])
def test_the_table_says_what_each_module_imports(module, column):
    documented = _documented_imports(column, module)
    actual = imports_of(module)
    undocumented = sorted(m for m in actual if not _covered(m, documented))
    unused = sorted(d for d in documented if not any(_covered(m, {d}) for m in actual))
    assert undocumented == [], f"{module} imports what its row in docs/architecture.md does not name"
    assert unused == [], f"{module}'s row in docs/architecture.md names what it does not import"


def test_no_import_cycles():
    graph = {module: imports_of(module) for module in modules()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def walk(module: str, path: list[str]) -> None:
        seen[module] = 1
        for target in sorted(graph[module]):
            if seen.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in seen:
                walk(target, [*path, target])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            walk(module, [module])
    assert cycles == []


def _closure(start: set[str]) -> set[str]:
    reached, todo = set(), list(start)
    while todo:
        module = todo.pop()
        for target in imports_of(module):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    return reached


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


#: What runs steps or serves the people and servers around them; everything else is below the steps.
#: (``tempo.web`` itself only holds URL_PREFIX, which links are built from.)
ABOVE_STEPS = {"tempo", "tempo.actions", "tempo.cli", "tempo.clock", "tempo.listeners", "tempo.plugin"}
ABOVE_STEPS |= {"tempo.yaml_templates"} | {m for m in modules() if m.startswith("tempo.web.")}


def test_nothing_below_the_steps_imports_steps():
    steps = {m for m in modules() if _in(m, "tempo.steps")}
    below = set(modules()) - steps - ABOVE_STEPS
    assert _closure(steps) - steps <= below, "a step builds on a module above the steps"
    assert sorted(m for m in below if any(_in(i, "tempo.steps") for i in imports_of(m))) == []


def test_the_store_imports_only_the_store_and_config():
    for module in (m for m in modules() if _in(m, "tempo.store")):
        assert {i for i in imports_of(module) if not _in(i, "tempo.store")} <= {"tempo.config"}, module


def test_only_the_plugin_imports_the_web_app():
    # ``tempo.web`` itself holds URL_PREFIX and imports nothing; its modules are the app.
    outside = {m for m in modules() if not _in(m, "tempo.web") and m != "tempo.plugin"}
    assert sorted(m for m in outside if any(i.startswith("tempo.web.") for i in imports_of(m))) == []
