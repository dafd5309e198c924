"""The inventory's *unused* flag and the overview's attention filter say the same thing, as the
docs do ("30+ days": no use for 30 days or more)."""

from __future__ import annotations

from pathlib import Path

from credentials.governance.inventory_usage import ATTENTION
from credentials.governance.selectors import FLAG_LABELS

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_the_unused_flag_reads_as_the_attention_filter_and_the_docs():
    assert FLAG_LABELS["unused"] == ATTENTION["unused"] == "Unused for 30+ days"
    assert "30+ days" in (DOCS / "governance.md").read_text(encoding="utf-8")
