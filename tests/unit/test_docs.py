"""The README stays a front page, and every link in it and in docs/ leads somewhere."""

import ast
import re
from pathlib import Path

import pytest

from app.queue import QUEUE, UNACKED_KEY
from tests.markdown import section

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_a_front_page_under_10_kb():
    assert (ROOT / "README.md").stat().st_size <= 10 * 1024


def test_every_doc_is_reachable_from_the_readme():
    reached, to_visit = set(), [ROOT / "README.md"]
    while to_visit:
        page = to_visit.pop()
        for target in LINK.findall(page.read_text()):
            path = (page.parent / target).resolve()
            if target.startswith("http") or path in reached or path.suffix != ".md":
                continue
            reached.add(path)
            to_visit.append(path)
    assert {page for page in PAGES if page.name != "README.md" or page.parent != ROOT} - reached == set()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_lead_to_files_that_exist(page):
    broken = [target for target in LINK.findall(page.read_text()) if not target.startswith("http")]
    assert [target for target in broken if not (page.parent / target).exists()] == []


def architecture_section(heading: str) -> str:
    return section((ROOT / "docs" / "architecture.md").read_text(), heading)


def code_map() -> str:
    return architecture_section("Code map")


@pytest.mark.parametrize("package", ["app", "tasks", "reporting", "tools"])
def test_the_code_map_names_every_module(package):
    named = set(re.findall(r"`([\w/]+\.py)`", code_map()))
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / package).rglob("*.py")}
    assert modules - named == set()


def test_the_code_map_has_one_row_per_module():
    """A module described twice drifts: one row gets updated, the other goes stale."""
    rows = re.findall(r"^\| `([\w/.]+)` \|", code_map(), re.MULTILINE)
    assert sorted({row for row in rows if rows.count(row) > 1}) == []


def test_every_module_the_code_map_names_exists():
    named = set(re.findall(r"`([\w/.]+\.py)`", code_map()))
    assert {path for path in named if not (ROOT / path).is_file()} == set()


def key_names_in_the_code() -> set[str]:
    """Each Redis key or key prefix the code spells out: its `analytics:` strings, and the
    queue and hash of kombu's transport it reads."""
    names = {QUEUE, UNACKED_KEY}
    for package in ("app", "tasks", "reporting"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node.value.startswith("analytics:")
                ):
                    names.add(node.value)
    return names


def documented_keys() -> set[str]:
    rows = re.findall(r"^\|([^|]+)\|", architecture_section("Redis keys"), re.MULTILINE)
    return {key for cell in rows for key in re.findall(r"`([^`]+)`", cell)}


def names_key(name: str, key: str) -> bool:
    return key == name or key.startswith(f"{name}:")


def test_the_redis_keys_table_names_every_key_the_code_uses():
    documented = documented_keys()
    missing = {name for name in key_names_in_the_code() if not any(names_key(name, k) for k in documented)}
    assert missing == set()


def test_every_key_of_ours_in_the_table_is_one_the_code_uses():
    names = key_names_in_the_code()
    ours = {key for key in documented_keys() if key.startswith("analytics:")}
    assert {key for key in ours if not any(names_key(name, key) for name in names)} == set()
