"""DRF authentication by API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`, never a URL query."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from credentials import keys
from credentials.services import api_key_record_use, api_key_verify
from portal.net import client_ip
from portal.principal import INVALID_CREDENTIAL, Principal

_QUERY_PARAMETERS = ("api_key", "apikey", "key", "access_token", "token")


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate a machine by API key and return `(Principal, Principal)`.

    A bearer value that is not shaped like an API key is left to the next authentication
    class (an access token, say). A key in the URL query is refused: URLs end up in logs.
    """

    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        if any(
            name.lower() in _QUERY_PARAMETERS
            # A whole key under any name; a short `ipk_live_<key id>` display prefix is a fine search.
            or (keys.looks_like_api_key(value) and len(value) >= keys.KEY_LENGTH)
            for name, values in request.query_params.lists()
            for value in values
        ):
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIAL)
        header_key = request.META.get("HTTP_X_API_KEY")
        if header_key is not None:
            raw = header_key.strip()
        else:
            auth = get_authorization_header(request).split()
            if not auth or auth[0].lower() != b"bearer":
                return None
            if len(auth) != 2:
                raise exceptions.AuthenticationFailed(INVALID_CREDENTIAL)
            try:
                raw = auth[1].decode("ascii")
            except UnicodeDecodeError:
                raise exceptions.AuthenticationFailed(INVALID_CREDENTIAL) from None
            if not keys.looks_like_api_key(raw):
                return None
        verification = api_key_verify(raw)
        if not verification.valid:
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIAL)
        api_key_record_use(verification, ip=client_ip(request._request))
        principal = verification.principal()
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
