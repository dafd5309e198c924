"""A browser's dashboard session never changes what the OAuth endpoints answer.

What was wrong: a request to `/oauth/*` or `/.well-known/*` carrying any cookie went down the full
browser middleware chain (portal.infra.lean took only cookie-less ones). A tab, Swagger or Postman
holding an idle portal session got a 302 to the login page from `POST /oauth/token`, introspection,
the JWKS and the metadata; a staff session without a second factor a 302 to `/accounts/2fa/`; and
the answers carried `Set-Cookie`. Now those prefixes always take the lean chain, and the account
security middlewares spare them as a second line. The exact machine paths (`/api/v1/whoami`,
`/api/v1/keys/verify`) keep the cookie rule; on the full chain the MFA gate spares them too (a
person's missing second factor said 403 to a valid API key there).
"""

from __future__ import annotations

import base64
import time

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory

from portal.account_security.events import LOGIN_AT, SEEN_AT
from portal.infra import lean
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "application/x-www-form-urlencoded"


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _session_cookie(user, **stamps) -> str:
    """Return a `Cookie` header value with the user's signed-in session and a CSRF cookie, as a tab has."""
    client = Client()
    client.force_login(user)
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    if stamps:
        store = SessionStore(session_key=key)
        store.update(stamps)
        store.save()
    return f"{django_settings.SESSION_COOKIE_NAME}={key}; {django_settings.CSRF_COOKIE_NAME}={'c' * 32}"


def _idle_session_cookie() -> str:
    person = UserFactory(email="dev-idle@acme.test")
    long_ago = time.time() - 10 * django_settings.PORTAL_SESSION_IDLE_SECONDS
    return _session_cookie(person, **{LOGIN_AT: time.time() - 60, SEEN_AT: long_ago})


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("POST", "/oauth/token", {"grant_type": "client_credentials"}),
        ("POST", "/oauth/introspect", {"token": "x"}),
        ("POST", "/oauth/revoke", {"token": "x"}),
        ("GET", "/.well-known/jwks.json", None),
        ("GET", "/.well-known/oauth-authorization-server", None),
    ],
)
def test_an_idle_dashboard_session_cookie_changes_nothing_at_the_oauth_endpoints(
    live_server, app, method, path, data
):
    response = requests.request(
        method,
        live_server.url + path,
        data=data,  # form-encoded, as every OAuth client sends it
        headers={"Authorization": _basic(app.client_id, app.client_secret), "Cookie": _idle_session_cookie()},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200, (response.status_code, response.headers.get("Location"))
    if path != "/oauth/revoke":  # RFC 7009 §2.2: an empty 200
        assert response.headers["Content-Type"].startswith("application/json")
    assert "Set-Cookie" not in response.headers


def test_a_staff_session_without_a_second_factor_does_not_redirect_the_token_endpoint(live_server, app):
    staff = UserFactory(email="ops@portal.test", is_staff=True)
    response = requests.post(
        live_server.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic(app.client_id, app.client_secret), "Cookie": _session_cookie(staff)},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200, (response.status_code, response.headers.get("Location"))
    assert "access_token" in response.json()
    assert "Set-Cookie" not in response.headers


def test_a_staff_session_without_a_second_factor_does_not_refuse_an_api_key_at_whoami(live_server, make_key):
    # A cookie still sends whoami down the full chain (the cookie rule of the exact machine paths).
    _row, plaintext = make_key()
    staff = UserFactory(email="ops@portal.test", is_staff=True)
    response = requests.get(
        live_server.url + "/api/v1/whoami",
        headers={"Authorization": f"Bearer {plaintext}", "Cookie": _session_cookie(staff)},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200, response.text[:200]
    assert response.json()["credential_type"] == "api_key"


def test_the_mfa_gate_still_answers_the_rest_api_for_a_staff_session_without_a_second_factor(organization):
    staff = UserFactory(email="ops@portal.test", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get(f"/api/v1/orgs/{organization.slug}/api-keys/")
    assert response.status_code == 403
    assert response.json()["code"] == "mfa_enrolment_required"
    assert client.get("/", follow=False)["Location"] == "/accounts/2fa/"


def test_which_requests_take_the_lean_chain():
    factory = RequestFactory()
    cookie = {"HTTP_COOKIE": "sessionid=abc"}
    assert lean.is_machine_request(factory.post("/oauth/token", **cookie))
    assert lean.is_machine_request(factory.get("/.well-known/jwks.json", **cookie))
    assert lean.is_machine_request(factory.get("/api/v1/whoami"))
    assert not lean.is_machine_request(factory.get("/api/v1/whoami", **cookie))
    assert not lean.is_machine_request(factory.get("/", **cookie))
    assert not lean.is_machine_request(factory.get("/api/v1/orgs/acme/api-keys/"))


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/oauth/token", "grant_type=client_credentials"),
        ("get", "/.well-known/jwks.json", None),
    ],
)
def test_on_the_full_chain_the_session_middlewares_spare_the_oauth_endpoints(
    monkeypatch, app, method, path, data
):
    """The second line: should a cookie-carrying OAuth request reach the browser layers, neither the
    idle timeout nor the MFA gate turns it into a redirect."""
    monkeypatch.setattr(lean, "is_machine_request", lambda request: False)
    auth = {"HTTP_AUTHORIZATION": _basic(app.client_id, app.client_secret)}
    extra = {"data": data, "content_type": FORM} if data else {}
    for cookie in (
        _idle_session_cookie(),
        _session_cookie(UserFactory(email="ops@portal.test", is_staff=True)),
    ):
        client = Client(HTTP_COOKIE=cookie)
        response = getattr(client, method)(path, **extra, **auth)
        assert response.status_code == 200, (response.status_code, response.get("Location"))
        assert hasattr(response.wsgi_request, "session")  # the full chain ran
