"""The REST API's JSON parser: DRF's, with a body nested too deeply, or holding a lone surrogate, as
a 400 like any bad JSON."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from portal.json_input import encodable


class JSONParser(parsers.JSONParser):
    """DRF turns a `ValueError` from `json` into `400 parse_error`, but not a `RecursionError`:
    5,000 `[` (5 KB) were an HTML 500 and an ERROR traceback on every endpoint that reads JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if not encodable(data):
            # `"\ud800"` is valid JSON but no text: a field echoing it in its 400 ("… is not a
            # valid choice") made the UTF-8 renderer fail, a 500.
            raise ParseError("JSON parse error - a string holds a lone surrogate (\\uD800-\\uDFFF).")
        return data
