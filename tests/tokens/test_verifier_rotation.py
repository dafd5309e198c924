"""A token signed right after a rotation verifies at a resource server using tokens.verifier."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from tokens.verifier import InvalidToken, TokenVerifier


@pytest.mark.django_db(transaction=True)
def test_token_signed_right_after_rotation_verifies_at_a_resource_server(live_server, app, token_for):
    """PyJWKClient starts its refetch cooldown at every fetch, routine ones included: a resource
    server that fetched the JWKS in the 30 s before a rotation refused every new token ("unknown
    kid"). The verifier's own cooldown counts only its refetches for unknown kids."""
    verifier = TokenVerifier(
        issuer=settings.PORTAL_ISSUER,
        audience=settings.PORTAL_DEFAULT_AUDIENCE,
        jwks_url=live_server.url + "/.well-known/jwks.json",
    )
    before = token_for(app)
    verifier.verify(before)  # the resource server's routine fetch of the JWKS

    call_command("rotate_signing_key", stdout=StringIO())
    after = token_for(app)

    try:
        verifier.verify(after)
    except InvalidToken as exc:
        pytest.fail(f"a token minted right after a routine rotation is refused: {exc.reason}")
