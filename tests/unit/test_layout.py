"""The layout's import rule (docs/architecture.md): imports point one way, from the edges into
`app/`, and the module graph has no cycle. Read from the source with `ast`, so a function-level
import counts as much as one at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "tasks", "reporting", "bench", "tools")
TOP_LEVEL = ("celeryconfig.py", "wsgi.py", "gunicorn.conf.py")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> dict[str, Path]:
    files = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    files.update({module_name(ROOT / name): ROOT / name for name in TOP_LEVEL})
    return files


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports: `from a.b import c` names `a.b.c` when that is a
    module, else `a.b`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return {name for name in found if name in known or top(name) == "tests"}


def names_imported(path: Path) -> set[str]:
    """Every dotted name an import in `path` mentions, relative ones too: `from a.b import c`
    gives `a.b` and `a.b.c`, `from . import c` gives `c`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names)
    return names


def imports_a_conftest(path: Path) -> bool:
    return any("conftest" in name.split(".") for name in names_imported(path))


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = project_files()
    return {module: imported_modules(path, set(files)) for module, path in files.items()}


def imports_of(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    return {module: imports for module, imports in graph.items() if top(module) == package}


def test_app_never_imports_tasks(graph):
    offenders = {m: i for m, i in imports_of(graph, "app").items() if any(top(n) == "tasks" for n in i)}
    assert offenders == {}


def test_app_imports_reporting_only_in_the_factory(graph):
    importers = {m for m, i in imports_of(graph, "app").items() if any(top(n) == "reporting" for n in i)}
    assert importers == {"app"}


def test_nothing_outside_the_tests_imports_them(graph):
    assert {m for m, i in graph.items() if any(top(n) == "tests" for n in i)} == set()


def test_only_the_benchmarks_import_themselves(graph):
    importers = {m for m, i in graph.items() if any(top(n) == "bench" for n in i)}
    assert {top(m) for m in importers} <= {"bench"}


def test_the_product_never_imports_the_developer_tools(graph):
    product = ("app", "tasks", "reporting", "celeryconfig", "wsgi", "gunicorn")
    assert {m for m, i in graph.items() if top(m) in product and any(top(n) == "tools" for n in i)} == set()


def test_no_module_imports_a_conftest():
    """pytest loads each conftest.py itself, for its fixtures; a helper a test imports lives in
    a module of its own (tests/integration/services.py, stack.py, client.py ...)."""
    paths = [*project_files().values(), *(ROOT / "tests").rglob("*.py")]
    assert sorted(str(path.relative_to(ROOT)) for path in paths if imports_a_conftest(path)) == []


def test_no_module_imports_itself_back_through_others(graph):
    """No import cycle: walking the graph from any module never returns to it."""
    cycles = []
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            module = stack.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                stack.extend(graph.get(module, ()))
    assert cycles == []


# pymongo's Collection methods that take a filter, a pipeline or documents.
COLLECTION_METHODS = {
    "aggregate", "bulk_write", "count_documents", "create_index", "create_indexes", "delete_many",
    "delete_one", "distinct", "drop_index", "find", "find_one", "find_one_and_update",
    "insert_many", "insert_one", "replace_one", "update_many", "update_one",
}  # fmt: skip


def collection_calls(path: Path) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in COLLECTION_METHODS
    }


def test_only_the_store_queries_mongodb():
    """app/store/ is the one place that builds a MongoDB filter or pipeline."""
    outside = {
        module: calls
        for module, path in project_files().items()
        if top(module) in ("app", "tasks", "reporting") and not module.startswith("app.store")
        if (calls := collection_calls(path))
    }
    assert outside == {}


def test_the_unit_tests_mirror_the_packages():
    """tests/unit/<name>/ for each package of app/ and each top-level package but the
    developer tools, and no folder there for a package that is gone."""
    packages = {path.parent.name for path in (ROOT / "app").glob("*/__init__.py")}
    packages |= {package for package in PACKAGES if package not in ("app", "tools")}
    folders = {path.parent.name for path in (ROOT / "tests" / "unit").glob("*/__init__.py")}
    assert folders == packages


def test_the_rule_checker_sees_a_violation(tmp_path):
    """The checks above can fail: a module importing `tasks` is found."""
    path = tmp_path / "module.py"
    path.write_text("def f():\n    from tasks.persist import store_batch\n")
    assert imported_modules(path, {"tasks.persist"}) == {"tasks.persist"}


@pytest.mark.parametrize(
    "source",
    ["from tests.integration.conftest import serve", "from .conftest import serve", "from . import conftest"],
)
def test_the_conftest_check_sees_an_import_of_one(tmp_path, source):
    path = tmp_path / "test_module.py"
    path.write_text(f"{source}\n")
    assert imports_a_conftest(path)
    path.write_text("from tests.integration.services import serve\n")
    assert not imports_a_conftest(path)
