"""The resource-server catalogue: staff keep it (admin, audited), applications choose audiences from it,
tokens carry only the scopes it accepts, and a verifier pinned to an organisation refuses another's token.
"""

from __future__ import annotations

import io
import json

import jwt
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent
from tests.factories import ResourceServerFactory
from tests.portal.test_account_security import make_stale
from tests.tokens.conftest import AppCredentials, basic, request_token
from tokens.catalogue import resource_server_update
from tokens.clients.services import m2m_app_create, m2m_app_request, m2m_app_set_exchange
from tokens.models import M2MApplication, ResourceServer
from tokens.verifier import InvalidToken, TokenVerifier

pytestmark = pytest.mark.django_db

#: Acme's own API: open only to Acme's applications.
ACME_API = "https://orders.acme.example"
#: A platform API every organisation may use.
PLATFORM_API = "https://reports.platform.example"


@pytest.fixture
def acme_api(organization):
    return ResourceServerFactory(identifier=ACME_API, name="Acme orders", organizations=[organization])


@pytest.fixture
def platform_api(scopes):
    return ResourceServerFactory(identifier=PLATFORM_API, name="Reports")


def _body(response) -> dict:
    return json.loads(response.content)


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _create_in_dashboard(client, org_slug: str, owner, **overrides):
    data = {
        "name": "Orders sync",
        "owner": owner.pk,
        "scopes": ["orders:read"],
        "token_lifetime": "600",
        **overrides,
    }
    return client.post(reverse("org-app-create", kwargs={"org_slug": org_slug}), data)


# --- the catalogue in the admin: staff only, audited ----------------------------------------------


def _admin_add(client, **overrides):
    data = {
        "identifier": "https://billing.platform.example",
        "name": "Billing",
        "description": "Invoices and payments",
        "scopes": [],
        "organizations": [],
        "is_active": "on",
        **overrides,
    }
    return client.post(
        reverse("admin:tokens_resourceserver_add"), {k: v for k, v in data.items() if v is not None}
    )


def test_the_default_audience_is_in_the_catalogue():
    # The data migration registered it (the test database is built by the migrations).
    server = ResourceServer.objects.get(identifier=settings.PORTAL_DEFAULT_AUDIENCE)
    assert server.is_active and not server.scopes.exists() and not server.organizations.exists()


def test_staff_register_a_resource_server_audited(staff_client, scopes, organization):
    response = _admin_add(staff_client, scopes=[scopes["billing:read"].pk], organizations=[organization.pk])
    assert response.status_code == 302, response.content.decode()[:2000]
    server = ResourceServer.objects.get(identifier="https://billing.platform.example")
    assert [s.name for s in server.scopes.all()] == ["billing:read"]
    assert list(server.organizations.all()) == [organization]
    event = AuditEvent.objects.get(action="tokens.resource_server.created")
    assert event.actor == staff_client.staff and event.target_id == str(server.pk)
    assert event.extra["scopes"] == ["billing:read"] and event.extra["organizations"] == ["acme"]
    listing = staff_client.get(reverse("admin:tokens_resourceserver_changelist")).content.decode()
    assert "https://billing.platform.example" in listing and settings.PORTAL_DEFAULT_AUDIENCE in listing


def test_staff_change_a_resource_server_audited_identifier_fixed(staff_client, platform_api, scopes):
    url = reverse("admin:tokens_resourceserver_change", args=[platform_api.pk])
    assert 'name="identifier"' not in staff_client.get(url).content.decode()  # read-only once set
    response = staff_client.post(
        url,
        {
            "identifier": "https://elsewhere.example",  # ignored: not a form field on change
            "name": "Reports v2",
            "description": "",
            "scopes": [scopes["orders:read"].pk],
            "organizations": [],
        },  # is_active unticked
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    platform_api.refresh_from_db()
    assert platform_api.identifier == PLATFORM_API and platform_api.name == "Reports v2"
    assert platform_api.is_active is False
    event = AuditEvent.objects.get(action="tokens.resource_server.updated")
    assert event.actor == staff_client.staff
    assert event.extra["changes"]["is_active"] == {"from": True, "to": False}
    assert event.extra["changes"]["scopes"] == {"from": [], "to": ["orders:read"]}
    # Saving without a change writes no event.
    staff_client.post(url, {"name": "Reports v2", "description": "", "scopes": [scopes["orders:read"].pk]})
    assert AuditEvent.objects.filter(action="tokens.resource_server.updated").count() == 1


def test_admin_refuses_bad_identifiers_and_closing_the_default(staff_client, organization):
    for identifier in ("not a uri", "https://x.example/#frag", settings.PORTAL_DEFAULT_AUDIENCE):
        response = _admin_add(staff_client, identifier=identifier)
        assert response.status_code == 200 and b"errorlist" in response.content
    default = ResourceServer.objects.get(identifier=settings.PORTAL_DEFAULT_AUDIENCE)
    url = reverse("admin:tokens_resourceserver_change", args=[default.pk])
    for data in ({"name": "API"}, {"name": "API", "is_active": "on", "organizations": [organization.pk]}):
        response = staff_client.post(url, {"description": "", **data})
        assert response.status_code == 200 and b"stays active and open" in response.content
    default.refresh_from_db()
    assert default.is_active and not default.organizations.exists()
    assert not AuditEvent.objects.filter(action__startswith="tokens.resource_server.").exists()
    # Entries are deactivated, never deleted: applications and the audit trail name them.
    delete = staff_client.post(
        reverse("admin:tokens_resourceserver_delete", args=[default.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403 and ResourceServer.objects.filter(pk=default.pk).exists()


def test_catalogue_changes_ask_staff_for_a_fresh_sign_in(staff_client):
    make_stale(staff_client)
    response = _admin_add(staff_client)
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    assert not ResourceServer.objects.filter(identifier="https://billing.platform.example").exists()


@pytest.mark.parametrize("who", ["anonymous", "customer owner"])
def test_only_staff_reach_the_catalogue(who, owner_client):
    client = Client() if who == "anonymous" else owner_client
    for url in (
        reverse("admin:tokens_resourceserver_changelist"),
        reverse("admin:tokens_resourceserver_add"),
    ):
        assert client.get(url).status_code == 302  # to the admin login
    response = _admin_add(client)
    assert response.status_code == 302
    assert not ResourceServer.objects.filter(identifier="https://billing.platform.example").exists()
    assert not AuditEvent.objects.filter(action__startswith="tokens.resource_server.").exists()


# --- choosing audiences: only catalogue entries open to the organisation, in every entry point -----


def test_dashboard_offers_the_catalogue_and_refuses_anything_else(
    owner_client, owner, acme_api, platform_api
):
    page = owner_client.get(reverse("org-app-create", kwargs={"org_slug": "acme"})).content.decode()
    assert f'value="{ACME_API}"' in page and f'value="{PLATFORM_API}"' in page
    response = _create_in_dashboard(owner_client, "acme", owner, audiences=["https://unknown.example"])
    assert response.status_code == 400
    content = response.content.decode()
    assert "Not in the resource server catalogue" in content and PLATFORM_API in content
    assert not M2MApplication.objects.exists()
    response = _create_in_dashboard(owner_client, "acme", owner, audiences=[ACME_API, PLATFORM_API])
    assert response.status_code == 201
    assert M2MApplication.objects.get().allowed_audiences == [ACME_API, PLATFORM_API]


def test_command_refuses_an_audience_outside_the_catalogue(owner, scopes, platform_api):
    base = ["--org", "acme", "--name", "job", "--owner", owner.email, "--json"]
    with pytest.raises(CommandError, match=r"Not in the resource server catalogue.*Choose from: .*reports"):
        call_command("create_m2m_app", *base, "--audiences", "https://unknown.example", stdout=io.StringIO())
    assert not M2MApplication.objects.exists()
    out = io.StringIO()
    call_command("create_m2m_app", *base, "--audiences", PLATFORM_API, stdout=out)
    assert M2MApplication.objects.get(pk=json.loads(out.getvalue())["id"]).allowed_audiences == [PLATFORM_API]


def test_services_refuse_an_audience_outside_the_catalogue(organization, owner, member, scopes):
    with pytest.raises(ValidationError) as caught:
        m2m_app_create(
            organization=organization, name="a", owner=owner, actor=owner, audiences=["https://x.example"]
        )
    assert settings.PORTAL_DEFAULT_AUDIENCE in caught.value.message_dict["audiences"][0]
    with pytest.raises(ValidationError, match="catalogue"):
        m2m_app_request(
            organization=organization,
            name="a",
            owner=member,
            requester=member,
            justification="needed",
            audiences=["https://x.example"],
        )
    assert not M2MApplication.objects.exists()


def test_an_inactive_entry_cannot_be_chosen(organization, owner, scopes, platform_api):
    resource_server_update(
        resource_server=platform_api,
        actor=None,
        name="Reports",
        description="",
        scopes=[],
        organizations=[],
        is_active=False,
    )
    with pytest.raises(ValidationError, match="catalogue"):
        m2m_app_create(
            organization=organization, name="a", owner=owner, actor=owner, audiences=[PLATFORM_API]
        )


def test_the_default_audience_needs_no_choosing(organization, owner, scopes):
    application, _secret = m2m_app_create(
        organization=organization,
        name="a",
        owner=owner,
        actor=owner,
        audiences=[settings.PORTAL_DEFAULT_AUDIENCE],
    )
    assert application.allowed_audiences == []
    assert application.audiences == [settings.PORTAL_DEFAULT_AUDIENCE]


def test_staff_cannot_add_an_outside_audience_in_the_application_admin(staff_client, make_app, platform_api):
    creds = make_app()
    url = reverse("admin:tokens_m2mapplication_change", args=[creds.application.pk])
    data = {
        "name": creds.application.name,
        "description": "",
        "owner": creds.application.owner_id,
        "allowed_scopes": [s.pk for s in creds.application.allowed_scopes.all()],
        "allowed_audiences": json.dumps(["https://unknown.example"]),
        "token_lifetime": str(creds.application.token_lifetime),
        "secrets-TOTAL_FORMS": "1",
        "secrets-INITIAL_FORMS": "1",
        "secrets-MIN_NUM_FORMS": "0",
        "secrets-MAX_NUM_FORMS": "1000",
        "secrets-0-id": creds.application.secrets.get().pk,
        "secrets-0-application": creds.application.pk,
        "public_keys-TOTAL_FORMS": "0",
        "public_keys-INITIAL_FORMS": "0",
        "public_keys-MIN_NUM_FORMS": "0",
        "public_keys-MAX_NUM_FORMS": "1000",
    }
    response = staff_client.post(url, data)
    assert response.status_code == 200 and b"Not in the resource server catalogue" in response.content
    creds.application.refresh_from_db()
    assert creds.application.allowed_audiences == []
    response = staff_client.post(url, {**data, "allowed_audiences": json.dumps([PLATFORM_API])})
    assert response.status_code == 302
    creds.application.refresh_from_db()
    assert creds.application.allowed_audiences == [PLATFORM_API]


# --- the attack (issue 14, item 10), over HTTP ------------------------------------------------------


def test_another_organisation_cannot_register_acme_api_as_audience(
    outsider_client, outsider, other_organization, acme_api, platform_api, scopes
):
    # Globex's owner sees Acme's own API nowhere, and naming it reads like any unknown URI.
    page = outsider_client.get(reverse("org-app-create", kwargs={"org_slug": "globex"})).content.decode()
    assert ACME_API not in page and PLATFORM_API in page
    response = _create_in_dashboard(outsider_client, "globex", outsider, audiences=[ACME_API])
    assert response.status_code == 400
    content = response.content.decode()
    assert "Not in the resource server catalogue for this organisation: " + ACME_API in content
    assert not M2MApplication.objects.filter(organization=other_organization).exists()
    with pytest.raises(CommandError, match="catalogue"):
        call_command(
            "create_m2m_app",
            "--org",
            "globex",
            "--name",
            "x",
            "--owner",
            outsider.email,
            "--audiences",
            ACME_API,
        )
    assert not M2MApplication.objects.filter(organization=other_organization).exists()


def test_a_token_for_acme_api_is_never_issued_to_another_organisation(
    client, make_app, acme_api, other_organization, outsider
):
    acme = make_app(audiences=[ACME_API])
    assert _claims(_body(request_token(client, acme, resource=ACME_API))["access_token"])["aud"] == ACME_API
    # Even an application that staff gave the audience before Acme's API was closed to others.
    globex = make_app(organization=other_organization, app_owner=outsider, name="Globex")
    M2MApplication.objects.filter(pk=globex.application.pk).update(allowed_audiences=[ACME_API])
    response = request_token(client, globex, resource=ACME_API)
    assert response.status_code == 400 and _body(response)["error"] == "invalid_target"


def test_a_verifier_pinned_to_acme_refuses_globex_tokens_with_the_same_audience(
    live_server, settings, make_app, platform_api, other_organization, outsider
):
    settings.PORTAL_ISSUER = live_server.url
    acme = make_app(audiences=[PLATFORM_API])
    globex = make_app(
        organization=other_organization, app_owner=outsider, name="Globex", audiences=[PLATFORM_API]
    )

    def token(creds: AppCredentials) -> str:
        response = Client().post(
            "/oauth/token",
            {"grant_type": "client_credentials", "resource": PLATFORM_API},
            HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
        )
        assert response.status_code == 200, response.content
        return _body(response)["access_token"]

    acme_token, globex_token = token(acme), token(globex)
    assert _claims(globex_token)["aud"] == _claims(acme_token)["aud"] == PLATFORM_API
    jwks_url = live_server.url + "/.well-known/jwks.json"
    unpinned = TokenVerifier(issuer=live_server.url, audience=PLATFORM_API, jwks_url=jwks_url)
    assert unpinned.verify(globex_token).organization == "globex"  # what `aud` alone lets through
    pinned = TokenVerifier(
        issuer=live_server.url, audience=PLATFORM_API, jwks_url=jwks_url, organization="acme"
    )
    assert pinned.verify(acme_token).organization == "acme"
    with pytest.raises(InvalidToken) as caught:
        pinned.verify(globex_token)
    assert caught.value.reason == "wrong organization"


# --- tokens carry only the scopes the resource server accepts ---------------------------------------


@pytest.fixture
def orders_read_only(scopes):
    """An API that accepts only `orders:read`."""
    return ResourceServerFactory(
        identifier="https://orders-read.example", name="Orders (read)", scopes=["orders:read"]
    )


def test_a_token_for_a_resource_holds_only_the_scopes_it_accepts(client, make_app, orders_read_only):
    creds = make_app(scopes=["orders:read", "orders:write"], audiences=[orders_read_only.identifier])
    body = _body(request_token(client, creds, resource=orders_read_only.identifier))
    assert body["scope"] == "orders:read" and _claims(body["access_token"])["scope"] == "orders:read"
    response = request_token(
        client, creds, resource=orders_read_only.identifier, scope="orders:read orders:write"
    )
    assert response.status_code == 400
    assert _body(response) == {
        "error": "invalid_scope",
        "error_description": "The resource does not accept the scope(s): orders:write.",
    }
    # The default audience accepts every scope, as before.
    assert _body(request_token(client, creds))["scope"] == "orders:read orders:write"


def test_no_accepted_scope_is_invalid_scope(client, make_app, orders_read_only):
    creds = make_app(scopes=["billing:read"], audiences=[orders_read_only.identifier])
    response = request_token(client, creds, resource=orders_read_only.identifier)
    assert response.status_code == 400 and _body(response)["error"] == "invalid_scope"


def test_catalogue_changes_apply_to_the_next_token_request(client, make_app, platform_api, organization):
    creds = make_app(audiences=[PLATFORM_API])
    assert request_token(client, creds, resource=PLATFORM_API).status_code == 200  # the entry is cached now
    fields = {"name": "Reports", "description": "", "scopes": [], "organizations": [], "is_active": True}
    resource_server_update(resource_server=platform_api, actor=None, **{**fields, "is_active": False})
    response = request_token(client, creds, resource=PLATFORM_API)
    assert response.status_code == 400 and _body(response)["error"] == "invalid_target"
    resource_server_update(resource_server=platform_api, actor=None, **fields)
    assert request_token(client, creds, resource=PLATFORM_API).status_code == 200
    from credentials.models import Scope

    narrowed = {**fields, "scopes": [Scope.objects.get(name="orders:write")]}
    resource_server_update(resource_server=platform_api, actor=None, **narrowed)
    assert _body(request_token(client, creds, resource=PLATFORM_API))["scope"] == "orders:write"


def test_an_exchanged_token_for_an_organisations_own_api_needs_the_keys_organisation(
    client, make_app, other_organization, outsider, organization, owner, scopes
):
    from credentials.api_keys.services import api_key_create
    from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

    # Globex's own API; Globex's gateway may name it, but not for Acme's key.
    ResourceServerFactory(identifier="https://globex-api.example", organizations=[other_organization])
    gateway = make_app(
        organization=other_organization, app_owner=outsider, audiences=["https://globex-api.example"]
    )
    m2m_app_set_exchange(application=gateway.application, allowed=True, actor=None)
    _key, acme_key = api_key_create(
        organization=organization, name="k", owner=owner, scopes=["orders:read"], actor=owner
    )
    data = {
        "grant_type": GRANT_TYPE,
        "subject_token": acme_key,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        "resource": "https://globex-api.example",
    }
    auth = basic(gateway.client_id, gateway.client_secret)
    response = client.post("/oauth/token", data, HTTP_AUTHORIZATION=auth)
    assert response.status_code == 400 and _body(response)["error"] == "invalid_target"
    del data["resource"]
    assert (
        _claims(_body(client.post("/oauth/token", data, HTTP_AUTHORIZATION=auth))["access_token"])["org_id"]
        == "acme"
    )
