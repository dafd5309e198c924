"""CSV for spreadsheets: one guard against formula injection, one line writer (every CSV export uses them)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

#: A cell starting with one of these is run as a formula by Excel, LibreOffice or Google Sheets
#: (OWASP "CSV Injection"): such a cell gets a leading apostrophe, which spreadsheets show as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def safe_cell(value: object) -> str:
    """Return a cell's text ("" for None), with a leading apostrophe if a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Yield the header and each row as a CSV line (RFC 4180 quoting), every cell made safe.

    Numbers (int) are written as they are: only text can start a formula, and a negative count
    cannot occur.
    """
    writer = csv.writer(_Echo())
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([cell if isinstance(cell, int) else safe_cell(cell) for cell in row])
