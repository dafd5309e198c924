"""docs/operations.md, read by the tests that hold its runbooks to what the portal and its servers do."""

from __future__ import annotations

import re
from pathlib import Path

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def section(title: str) -> str:
    """Return the text under the heading `title` (## or ###), up to the next heading of its level or above."""
    text = OPERATIONS.read_text()
    heading = re.search(rf"^(#{{2,3}}) {re.escape(title)}\n", text, re.M)
    assert heading, f"docs/operations.md has no section {title!r}"
    rest = text[heading.end() :]
    end = re.search(rf"^#{{2,{len(heading.group(1))}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def numbered_steps(text: str) -> dict[int, str]:
    """Return the top-level numbered list items of `text` (`1. …` at the start of a line), by number."""
    parts = re.split(r"^(\d+)\. ", text, flags=re.M)
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2], strict=True)}


def flat(text: str) -> str:
    """Return `text` with every run of white space as one space (a command may wrap across lines)."""
    return " ".join(text.split())
