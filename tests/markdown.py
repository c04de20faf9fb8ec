"""The project's Markdown pages as the docs tests read them: sections and fenced code blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELLS = ("sh", "bash")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language (empty when the fence names none), its text and the
    line of its opening fence."""

    language: str
    text: str
    line: int

    @property
    def is_shell(self) -> bool:
        """Whether a reader would paste it into a shell."""
        return self.language in SHELLS


def code_blocks(markdown: str) -> list[Block]:
    return [
        Block(match[1], match[2], markdown.count("\n", 0, match.start()) + 1)
        for match in FENCE.finditer(markdown)
    ]


def section(markdown: str, heading: str) -> str:
    """What follows `## heading`, up to the next heading of that level."""
    start = markdown.index(f"\n## {heading}\n")
    return markdown[start:].split("\n## ", 2)[1]
