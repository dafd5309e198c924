"""The REST API's JSON parser: DRF's, with a body nested too deeply as a 400 like any bad JSON."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF turns a `ValueError` from `json` into `400 parse_error`, but not a `RecursionError`:
    5,000 `[` (5 KB) were an HTML 500 and an ERROR traceback on every endpoint that reads JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
