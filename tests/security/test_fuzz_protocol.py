"""Hypothesis against the OAuth form endpoints and the machine-credential headers.

Odd encodings, repeated parameters, huge values, null bytes, bytes that are not UTF-8,
wrong content types and JSON where a form belongs. The bar: never a 5xx, never a
traceback, and the endpoint's own error format for every refusal.
"""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.principal import INVALID_CREDENTIAL, MAX_CREDENTIAL_LENGTH
from tests.security.conftest import ALL_SCOPES
from tests.tokens.conftest import basic

pytestmark = pytest.mark.django_db

fuzz = settings(
    max_examples=int(os.environ.get("FUZZ_PROTOCOL_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)

OAUTH_NAMES = [
    "grant_type", "client_id", "client_secret", "scope", "resource", "token", "token_type_hint",
    # private_key_jwt (RFC 7523) and token exchange (RFC 8693)
    "client_assertion", "client_assertion_type", "subject_token", "subject_token_type",
    "requested_token_type", "audience", "actor_token",
]  # fmt: skip
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "application/json",
    "text/plain",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "",
]
# Everything from control characters and null bytes to astral planes, plus surrogates escaped.
odd_text = st.text(st.characters(codec=None, exclude_categories=["Cs"]), max_size=40)
latin1_text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
huge = st.integers(min_value=MAX_CREDENTIAL_LENGTH - 2, max_value=MAX_CREDENTIAL_LENGTH + 50_000).map(
    lambda n: "A" * n
)
raw_bytes = st.binary(max_size=200)
value = st.one_of(
    odd_text,
    latin1_text,
    raw_bytes.map(lambda b: b.decode("latin-1")),
    st.sampled_from(["client_credentials", "%", "%zz", "%ff%fe", "%00", "a\x00b", "+", "=", "&", ""]),
    st.sampled_from(
        [
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "urn:identity-portal:params:oauth:token-type:api-key",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJcdWQ4MDAifQ.",  # alg none, sub a lone surrogate
        ]
    ),
    huge,
)
name = st.one_of(st.sampled_from(OAUTH_NAMES), odd_text)


@st.composite
def form_body(draw) -> bytes:
    """A form body: encoded pairs (repeats allowed), raw percent soup, or arbitrary bytes."""
    kind = draw(st.sampled_from(["pairs", "raw", "bytes", "json", "huge"]))
    if kind == "pairs":
        pairs = draw(st.lists(st.tuples(name, value), max_size=8))
        encode = draw(st.sampled_from(["utf-8", "latin-1"]))
        return "&".join(
            quote_from_bytes(k.encode(encode, "replace"))
            + "="
            + quote_from_bytes(v.encode(encode, "replace"))
            for k, v in pairs
        ).encode()
    if kind == "raw":
        return draw(st.lists(st.one_of(name, value), max_size=8)).__str__().encode("utf-8", "surrogatepass")
    if kind == "json":
        return json.dumps(
            draw(st.dictionaries(name, st.one_of(value, st.integers(), st.none()), max_size=5))
        ).encode()
    if kind == "huge":
        return b"client_secret=" + b"x" * draw(st.integers(min_value=250_000, max_value=300_000))
    return draw(raw_bytes)


@st.composite
def authorization(draw, valid: str) -> str | None:
    """An Authorization header: absent, valid, Basic/Bearer with garbage, huge, or raw latin-1."""
    kind = draw(st.sampled_from(["none", "valid", "basic-b64", "basic-text", "bearer", "huge", "latin1"]))
    if kind == "none":
        return None
    if kind == "valid":
        return valid
    if kind == "basic-b64":
        return "Basic " + base64.b64encode(draw(raw_bytes)).decode()
    if kind == "basic-text":
        return "Basic " + draw(latin1_text)
    if kind == "bearer":
        return "Bearer " + draw(latin1_text)
    if kind == "huge":
        return draw(st.sampled_from(["Basic ", "Bearer ", "Digest "])) + draw(huge)
    return draw(latin1_text)


def assert_sane(response, *, json_errors: bool) -> None:
    text = response.content.decode("utf-8", "replace")
    assert response.status_code < 500, (response.status_code, text[:500])
    assert "Traceback" not in text and 'File "' not in text
    if json_errors and response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), (response.status_code, text[:200])


@pytest.fixture
def no_limits(settings):
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 0
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 0
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 0
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 0


@pytest.fixture
def oauth_app(make_app, client, no_limits):
    app = make_app()
    response = client.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    return app, json.loads(response.content)["access_token"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
@fuzz
@given(
    data=st.data(),
    body=form_body(),
    content_type=st.sampled_from(CONTENT_TYPES),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    query=st.one_of(st.just(""), st.just("?client_secret=x"), latin1_text.map(lambda t: "?" + t)),
)
def test_oauth_endpoints_never_fail_on_odd_requests(
    client, oauth_app, path, data, body, content_type, method, query
):
    app, token = oauth_app
    header = data.draw(authorization(basic(app.client_id, app.client_secret)))
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    if data.draw(st.booleans()):
        # Keep a valid form in play too, so the deeper branches are reached.
        body = body + b"&grant_type=client_credentials&token=" + token.encode()
    response = client.generic(method, path + query, body, content_type=content_type, **extra)
    assert_sane(response, json_errors=True)
    assert response["Cache-Control"] == "no-store"


key_like = st.one_of(
    odd_text,
    latin1_text,
    huge,
    st.builds(lambda s: "ipk_live_" + s, st.text("0123456789abcdefABCDEF\x00é", min_size=0, max_size=70)),
    st.builds(lambda s: "eyJ" + s, st.text("abcXYZ012.-_", max_size=200)),
)


def on_the_wire(value: str) -> str:
    """Return a header value as a WSGI server hands it over: the UTF-8 bytes, read as latin-1."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


@st.composite
def machine_headers(draw, key: str) -> dict:
    """Authorization and/or X-API-Key, each absent, valid, garbage, huge, repeated (comma-joined)."""
    headers = {}
    for meta, prefix in (("HTTP_AUTHORIZATION", "Bearer "), ("HTTP_X_API_KEY", "")):
        kind = draw(st.sampled_from(["none", "valid", "garbage", "scheme", "repeated"]))
        if kind == "valid":
            headers[meta] = prefix + key
        elif kind == "garbage":
            headers[meta] = prefix + draw(key_like)
        elif kind == "scheme":
            headers[meta] = draw(
                st.sampled_from(["Bearer", "Bearer  ", "bearer\t", "Basic ", "Token "])
            ) + draw(key_like)
        elif kind == "repeated":
            headers[meta] = f"{prefix}{key}, {prefix}{draw(key_like)}"
    return {meta: on_the_wire(value) for meta, value in headers.items()}


@pytest.fixture
def verifier_key(make_key, no_limits) -> str:
    """A key holding every scope, `api_keys:verify` included (fixtures run once per hypothesis test)."""
    return make_key(scopes=ALL_SCOPES)[1]


def assert_machine_refusal(response, *, detail: str | None = INVALID_CREDENTIAL) -> None:
    """Check a refusal is a DRF error body; a 401 also challenges for a bearer credential."""
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and body, body
    if response.status_code == 401:
        assert set(body) == {"detail", "code"} and (detail is None or body["detail"] == detail), body
        assert response["WWW-Authenticate"].startswith("Bearer")


@fuzz
@given(data=st.data())
def test_whoami_header_parsing(client, verifier_key, data):
    headers = data.draw(machine_headers(verifier_key))
    response = client.get("/api/v1/whoami", **headers)
    assert_sane(response, json_errors=True)
    assert response.status_code in (200, 401), response.status_code
    assert_machine_refusal(response)


verify_payload = st.one_of(
    st.builds(lambda k: json.dumps({"key": k}).encode(), key_like),
    st.builds(
        lambda k: json.dumps({"key": k}).encode(), st.one_of(st.integers(), st.none(), st.lists(st.text()))
    ),
    st.builds(lambda k: json.dumps({"key": k, "key ": k}).encode(), key_like),
    st.builds(lambda k: json.dumps([k]).encode(), key_like),
    raw_bytes,
    st.builds(lambda b: b'{"key": "' + b + b'"}', raw_bytes),
    form_body(),
)


@fuzz
@given(data=st.data(), body=verify_payload, content_type=st.sampled_from(CONTENT_TYPES))
def test_key_verification_endpoint(client, verifier_key, data, body, content_type):
    headers = data.draw(machine_headers(verifier_key))
    response = client.generic("POST", "/api/v1/keys/verify", body, content_type=content_type, **headers)
    assert_sane(response, json_errors=True)
    assert response.status_code in (200, 400, 401, 403, 413, 415), response.status_code
    assert_machine_refusal(response, detail=None)
    if response.status_code == 200:
        assert isinstance(response.json()["valid"], bool)
