"""The Makefile is the front door: each target it declares exists, and the README's table
lists every target `make help` shows once, and no other."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()


def targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", MAKEFILE, re.MULTILINE))


def test_every_phony_target_is_defined():
    phony = {name for line in re.findall(r"^\.PHONY:(.*)$", MAKEFILE, re.MULTILINE) for name in line.split()}
    assert phony - targets() == set()


def test_the_readme_table_lists_the_targets_make_help_shows():
    helped = re.findall(r"^([a-z][\w-]*):.*## ", MAKEFILE, re.MULTILINE)
    readme = (ROOT / "README.md").read_text()
    listed = re.findall(r"^\| `([a-z][\w-]*)` \|", readme, re.MULTILINE)
    assert sorted(listed) == sorted(helped)
