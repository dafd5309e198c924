"""Helpers for the authority tests: what "nothing changed" means, and who is behind a request."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_request
from credentials.governance.models import CredentialRequest, OrganizationPolicy
from credentials.webhooks.models import WebhookDelivery, WebhookEndpoint
from portal.models import AuditEvent, Invitation, Membership
from tests.tokens.conftest import basic
from tokens.models import ClientPublicKey, ClientSecret, M2MApplication

#: The rows whose content decides who holds what power. Usage bookkeeping (last used, timestamps
#: a refused call may touch) is left out: a refusal may note that a credential was presented.
TRACKED = (
    ApiKey,
    M2MApplication,
    ClientSecret,
    ClientPublicKey,
    CredentialRequest,
    OrganizationPolicy,
    WebhookEndpoint,
    WebhookDelivery,
    Membership,
    Invitation,
)
_UNTRACKED_FIELDS = re.compile(r"last_used|updated_at|last_attempt|next_attempt")

#: A full API key (prefix, environment, key id, secret and checksum) anywhere in a response.
API_KEY_RE = re.compile(rb"ipk_(?:live|test)_[0-9A-Za-z]{30,}")


def _fields(model) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if not _UNTRACKED_FIELDS.search(f.attname)]


def state() -> tuple:
    """Return every tracked row (minus bookkeeping) and the audit row count: equal means nothing changed."""
    rows = tuple(tuple(model.objects.order_by("pk").values_list(*_fields(model))) for model in TRACKED)
    return rows, AuditEvent.objects.count()


def counts() -> tuple:
    """Return the row counts of the tracked tables and of the audit log, in one query."""
    from django.db import connection

    tables = [model._meta.db_table for model in (*TRACKED, AuditEvent)]
    quote = connection.ops.quote_name
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(t)})" for t in tables)  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone())


def describe_change(before: tuple, after: tuple) -> str:
    """Say which table changed between two `state()` snapshots."""
    (rows_before, audit_before), (rows_after, audit_after) = before, after
    changed = [m.__name__ for m, a, b in zip(TRACKED, rows_before, rows_after, strict=True) if a != b]
    if audit_before != audit_after:
        changed.append(f"AuditEvent ({audit_before} -> {audit_after})")
    return ", ".join(changed)


def leaked(content: bytes, secrets: set[str]) -> list[str]:
    """Return the known secrets (shortened) found in a response body, and any full API key."""
    found = [s[:12] + "…" for s in secrets if s and s.encode() in content]
    found += [m.group(0)[:16].decode() + "…" for m in API_KEY_RE.finditer(content)]
    return found


@dataclass
class Bearer:
    """A machine credential as a client sends it."""

    value: str

    def client(self) -> Client:
        return Client(HTTP_AUTHORIZATION=f"Bearer {self.value}")


def own_request(organization, requester) -> CredentialRequest:
    """File a request for a new API key of the requester's own, waiting for someone else's approval."""
    _key, request = api_key_request(
        organization=organization,
        name="needs approval",
        owner=requester,
        scopes=["orders:read"],
        requester=requester,
        justification="nightly export",
    )
    return request


def token_for(application, secret: str) -> str:
    """Mint a client-credentials token of `application` with one of its secrets."""
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(application.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]
