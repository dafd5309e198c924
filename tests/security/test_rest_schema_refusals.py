"""Every refusal the organisation REST API serves is declared in `/api/schema/` (portal.openapi).

The schema used to list only the statuses each view named: rotate-secret's 400, the M2M
application's 404, move-to-m2m-app's 400/403/404, the requests API's 400 and 404, the inventory's
400, a 403 `insufficient_scope` on reads, the 401 of every organisation endpoint and the 404 for
a `page` past the end were served (and promised by the docs) but undeclared, so a client
generated from the schema could not take them.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_request
from tests.factories import make_api_key, make_m2m_app
from tests.security.openapi import conformance_errors, openapi, operation

pytestmark = pytest.mark.django_db

METHODS = ("get", "put", "post", "patch", "delete")


def _served(client: Client, method: str, path: str, body=None) -> tuple[int, dict]:
    response = client.generic(
        method, path, json.dumps(body) if body is not None else "", content_type="application/json"
    )
    return response.status_code, response.json()


def _owner_client(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def _org_operations() -> list[tuple[str, str]]:
    """Return (method, concrete path) for every organisation operation of the schema."""
    operations = []
    for template, item in openapi()["paths"].items():
        if template.startswith("/api/v1/orgs/"):
            path = template.replace("{org_slug}", "acme").replace("{key_id}", "AAAAAAAAAAAA")
            path = re.sub(r"\{[^}]+\}", "1", path)
            operations += [(method.upper(), path) for method in METHODS if method in item]
    return operations


def test_every_organisation_operation_declares_its_401(organization):
    operations = _org_operations()
    assert len(operations) > 30
    for method, path in operations:
        status, body = _served(Client(), method, path, {})
        assert status == 401, (method, path, status)
        assert conformance_errors(method, path, status, body) == [], (method, path)


def test_every_organisation_operation_declares_the_404_of_another_organisation(owner, other_organization):
    for method, path in _org_operations():
        path = path.replace("/acme/", f"/{other_organization.slug}/")
        status, body = _served(_owner_client(owner), method, path, {})
        assert status == 404, (method, path, status)
        assert conformance_errors(method, path, status, body) == [], (method, path)


@pytest.mark.parametrize("path", ["/api/v1/orgs/acme/api-keys/", "/api/v1/orgs/acme/requests/"])
def test_a_page_past_the_end_404_is_declared(owner, scopes, path):
    status, body = _served(_owner_client(owner), "GET", f"{path}?page=99")
    assert status == 404
    assert conformance_errors("GET", path, status, body) == []


def test_rotate_secret_400_on_overlap_hours_is_declared(owner, organization, scopes):
    """docs/m2m.md: rotate-secret answers 400 on `overlap_hours` (out of range, or not 0 for a
    leaked secret)."""
    app, _ = make_m2m_app(organization, owner)
    path = f"/api/v1/orgs/acme/m2m-apps/{app.pk}/rotate-secret/"
    status, body = _served(_owner_client(owner), "POST", path, {"overlap_hours": 999})
    assert status == 400, body
    assert conformance_errors("POST", path, status, body) == []


def test_showing_an_unknown_application_404_is_declared(owner, organization, scopes):
    """docs/m2m.md: another organisation's application is a 404 (the API-keys twin declared it)."""
    path = "/api/v1/orgs/acme/m2m-apps/999999/"
    status, body = _served(_owner_client(owner), "GET", path)
    assert status == 404
    assert conformance_errors("GET", path, status, body) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [("other_owner", 403), ("unknown_key", 404), ("long_name", 400)],
)
def test_move_refusals_are_declared(owner, member, organization, scopes, case, expected):
    """docs/api-keys.md "Moving a key": 403 (rule api_key.move), 404 (another organisation's key)
    and a 400 for a bad body."""
    key, _ = make_api_key(organization, owner)
    key_id = "AAAAAAAAAAAA" if case == "unknown_key" else key.key_id
    body = {"name": "x" * 200} if case == "long_name" else {}
    path = f"/api/v1/orgs/acme/api-keys/{key_id}/move-to-m2m-app/"
    status, served = _served(_owner_client(member if case == "other_owner" else owner), "POST", path, body)
    assert status == expected, served
    assert conformance_errors("POST", path, status, served) == []


def test_requests_api_filter_400_and_unknown_request_404_are_declared(owner, member, organization, scopes):
    """docs/governance.md: "`400` field errors for a bad body or filter; `404` for another
    organisation's request"."""
    api_key_request(
        organization=organization,
        name="n",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="j",
    )
    client = _owner_client(owner)
    status, body = _served(client, "GET", "/api/v1/orgs/acme/requests/?state=bogus")
    assert status == 400
    assert conformance_errors("GET", "/api/v1/orgs/acme/requests/", status, body) == []
    status, body = _served(client, "GET", "/api/v1/orgs/acme/requests/999999/")
    assert status == 404
    assert conformance_errors("GET", "/api/v1/orgs/acme/requests/999999/", status, body) == []


def test_inventory_filter_400_is_declared(owner, organization, scopes):
    """docs/governance.md: a sort (or other filter) value the inventory does not know is
    "refused (400 over REST)"."""
    status, body = _served(_owner_client(owner), "GET", "/api/v1/orgs/acme/inventory/?sort=bogus")
    assert status == 400
    assert conformance_errors("GET", "/api/v1/orgs/acme/inventory/", status, body) == []


@pytest.mark.parametrize(
    "path",
    ["/api/v1/orgs/acme/api-keys/", "/api/v1/orgs/acme/m2m-apps/", "/api/v1/orgs/acme/inventory/"],
)
def test_a_credential_without_the_scope_403_on_reads_is_declared(organization, owner, scopes, path):
    """A key lacking `api_keys:manage` / `m2m_apps:manage` / `inventory:read` reads nothing: 403
    `insufficient_scope` (docs/security.md)."""
    _key, plaintext = make_api_key(organization, owner, scopes=["orders:read"])
    status, body = _served(Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"), "GET", path)
    assert status == 403 and body["code"] == "insufficient_scope"
    assert conformance_errors("GET", path, status, body) == []


def test_the_refusals_name_one_error_shape():
    """Every declared 401, 403 and 404 of the organisation API is `{"detail", "code"}`, the one
    component the secret-scanning endpoint also names."""
    for template, item in openapi()["paths"].items():
        if not template.startswith("/api/v1/orgs/"):
            continue
        for method in METHODS:
            for status in ("401", "403", "404"):
                if method in item:
                    declared = item[method]["responses"][status]["content"]["application/json"]["schema"]
                    assert declared == {"$ref": "#/components/schemas/Error"}, (method, template, status)


def test_every_declared_refusal_names_its_body():
    """The 409s views declare by description alone, and the 429 and 503 every organisation
    endpoint can serve, are declared with the `{"detail", "code"}` body a client can parse."""
    conflicts = 0
    for template, item in openapi()["paths"].items():
        if not template.startswith("/api/v1/orgs/"):
            continue
        for method in METHODS:
            if method not in item:
                continue
            responses = item[method]["responses"]
            for status in ("429", "503"):
                assert status in responses, (method, template, status)
            for status, declared in responses.items():
                if status.startswith(("4", "5")) and status != "400":
                    schema = declared["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, template, status)
                    conflicts += status == "409"
    assert conflicts > 10


@pytest.mark.usefixtures("rate_clock")
def test_a_rate_limited_key_429_is_declared(redis_cache, organization, owner, scopes):
    """docs/security.md: a key past its rate limit answers 429 `rate_limited` on any endpoint."""
    _key, plaintext = make_api_key(
        organization, owner, scopes=["api_keys:manage"], rate_limit={"requests": 1, "per_seconds": 60}
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    path = "/api/v1/orgs/acme/api-keys/"
    assert _served(client, "GET", path)[0] == 200
    status, body = _served(client, "GET", path)
    assert status == 429 and body["code"] == "rate_limited"
    assert conformance_errors("GET", path, status, body) == []


def test_an_already_revoked_key_409_has_the_declared_body(owner, organization, scopes):
    key, _ = make_api_key(organization, owner)
    client = _owner_client(owner)
    path = f"/api/v1/orgs/acme/api-keys/{key.key_id}/revoke/"
    assert _served(client, "POST", path, {"reason": "done"})[0] == 200
    status, body = _served(client, "POST", path, {"reason": "again"})
    assert status == 409
    assert "content" in operation("POST", path)["responses"]["409"]  # else any body conforms
    assert conformance_errors("POST", path, status, body) == []
