"""`TokenVerifier.verify` raises only `InvalidToken`, also when the JWKS answer is unusable (an
HTML page, an empty key set, an unparsable key): a resource server following
docs/validating-tokens.md answers 401, never 500."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.servers import LocalHTTPServer
from tokens.signing.keys import public_jwk_for
from tokens.verifier import InvalidToken, TokenVerifier

ISSUER = "https://portal.example.test"
AUDIENCE = "https://api.example.test"


def _serving(body: bytes) -> LocalHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return LocalHTTPServer(Handler)


@pytest.mark.parametrize(
    "body",
    [
        None,  # control: a usable key set without the token's kid is InvalidToken today
        b"<html>down for maintenance</html>",
        b'{"keys": []}',
        b'{"keys": [{"kty": "RSA", "kid": "x"}]}',
    ],
    ids=["control-other-key", "html", "empty-key-set", "unparsable-key"],
)
def test_an_unusable_jwks_answer_is_invalid_token(body):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = public_jwk_for(key.public_key(), "RS256")["kid"]
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": ISSUER,
            "sub": "m",
            "client_id": "m",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 60,
            "jti": "j",
            "scope": "",
        },
        key,
        algorithm="RS256",
        headers={"typ": "at+jwt", "kid": kid},
    )
    if body is None:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        body = json.dumps({"keys": [public_jwk_for(other.public_key(), "RS256")]}).encode()
    with _serving(body) as server:
        verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=server.base + "/jwks.json")
        with pytest.raises(InvalidToken):
            verifier.verify(token)
