"""DRF's content negotiation, remembered per Accept header for the machine endpoints.

Every machine request (`/api/v1/whoami`, `/api/v1/keys/verify`) asked DRF to parse its Accept
header and match it against the renderers again: 5–7 % of a warm whoami (docs/performance.md
"Third pass"). Services send the same one or two Accept headers on every request, and the
choice depends only on that header, the renderer classes and a format override, so
`MachineNegotiation` remembers DRF's own answer (which renderer of the list, which media type)
for a request with no query string (no `?format=`) and no format suffix. Anything else, an
Accept header longer than `MAX_HEADER`, and every refusal (406) go through DRF as before; at
most `MAX_REMEMBERED` headers are kept (client input: the table is emptied when full).
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

#: Accept headers remembered at most; a longer header is negotiated every time.
MAX_REMEMBERED = 256
MAX_HEADER = 256

#: (Accept header, renderer classes) -> (index of the chosen renderer, media type).
_chosen: dict[tuple[str, tuple[type, ...]], tuple[int, str]] = {}


class MachineNegotiation(DefaultContentNegotiation):
    """DRF's `DefaultContentNegotiation`, with its renderer choice remembered per Accept header."""

    def select_renderer(self, request, renderers, format_suffix=None):
        meta = getattr(request, "_request", request).META
        accept = meta.get("HTTP_ACCEPT", "*/*")
        if format_suffix or meta.get("QUERY_STRING") or len(accept) > MAX_HEADER:
            return super().select_renderer(request, renderers, format_suffix)
        key = (accept, tuple(type(renderer) for renderer in renderers))
        chosen = _chosen.get(key)
        if chosen is None:
            renderer, media_type = super().select_renderer(request, renderers, format_suffix)
            if len(_chosen) >= MAX_REMEMBERED:
                _chosen.clear()
            _chosen[key] = chosen = (renderers.index(renderer), media_type)
            return renderer, media_type
        return renderers[chosen[0]], chosen[1]
