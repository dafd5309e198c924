"""CSV for spreadsheets: one guard against formula injection, one line writer (every CSV export uses them)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator

#: A cell starting with one of these is run as a formula by Excel, LibreOffice or Google Sheets
#: (OWASP "CSV Injection"): such a cell gets a leading apostrophe, which spreadsheets show as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


#: A spreadsheet that splits a .csv on `;` (Excel in most European locales) or on tabs starts a
#: new cell after one, unquoted; one that does not honour the quotes around a line break (the
#: `;` split again) starts a new record, hence a new cell, after it: a formula character there
#: gets the apostrophe too.
_FORMULA_AFTER_SEPARATOR = re.compile(r"([;\t\r\n][ ]*)([=+\-@])")


def safe_cell(value: object) -> str:
    """Return a cell's text ("" for None), with an apostrophe before anything a spreadsheet would run.

    That is a formula character at the start, or right after a `;`, a tab or a line break (OWASP
    "CSV Injection": the separator matters, not only the first character).
    """
    text = "" if value is None else str(value)
    text = _FORMULA_AFTER_SEPARATOR.sub(r"\1'\2", text)
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
