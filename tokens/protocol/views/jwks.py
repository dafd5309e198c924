"""`GET /.well-known/jwks.json`: the public signing keys (RFC 7517 §5, kid per RFC 7638)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from portal.infra.errors import require_get
from tokens.signing.keys import jwks_document
from tokens.signing.services import active_signing_key


@require_get
def jwks(request: HttpRequest) -> JsonResponse:
    """Publish the active key, the staged next one, and every retired key whose tokens may still be alive.

    Public members only (`kty`, `kid`, `alg`, `use` and `n`/`e` or `crv`/`x`/`y`).
    """
    active_signing_key()  # creates the first key when none exists yet
    response = JsonResponse(jwks_document())
    response["Cache-Control"] = f"public, max-age={settings.PORTAL_JWKS_MAX_AGE_SECONDS}"
    return response
