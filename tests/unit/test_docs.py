"""The README stays a front page, and every link in it and in docs/ leads somewhere."""

import re
from pathlib import Path

import pytest

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


def code_map() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return text[text.index("## Code map") :].split("\n## ", 1)[0]


@pytest.mark.parametrize("package", ["app", "tasks", "reporting", "tools"])
def test_the_code_map_names_every_module(package):
    named = set(re.findall(r"`([\w/]+\.py)`", code_map()))
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / package).rglob("*.py")}
    assert modules - named == set()


def test_every_module_the_code_map_names_exists():
    named = set(re.findall(r"`([\w/.]+\.py)`", code_map()))
    assert {path for path in named if not (ROOT / path).is_file()} == set()
