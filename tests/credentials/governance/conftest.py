"""Fixtures for governance tests: one `Kit` per credential kind, so every test runs for both kinds."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from credentials.governance.org_policy import policy_update
from tests.factories import make_api_key, make_m2m_app
from tokens.models import M2MApplication


def whoami(client: Client, bearer: str):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {bearer}")


@dataclass
class Kit:
    """How to create, use and address one credential kind in tests."""

    key: str
    organization: object

    # --- creation -------------------------------------------------------------------------

    def create(self, *, owner, scopes=("orders:read",), name="job"):
        """Create an active credential; return (row, secret)."""
        make = make_api_key if self.key == "api_key" else make_m2m_app
        return make(self.organization, owner, name=name, scopes=scopes)

    @property
    def model(self):
        return ApiKey if self.key == "api_key" else M2MApplication

    def reload(self, credential):
        return self.model.objects.get(pk=credential.pk)

    # --- use ------------------------------------------------------------------------------

    def bearer(self, client: Client, credential, secret: str):
        """Return what a machine would send as Bearer, or the failed token response."""
        if self.key == "api_key":
            return secret, None
        auth = "Basic " + base64.b64encode(f"{credential.client_id}:{secret}".encode()).decode()
        response = client.post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
        if response.status_code != 200:
            return None, response
        return json.loads(response.content)["access_token"], response

    def scopes_in_use(self, client: Client, credential, secret: str):
        """Return the scopes the credential gets through /api/v1/whoami, or None if refused."""
        bearer, _ = self.bearer(client, credential, secret)
        if bearer is None:
            return None
        response = whoami(client, bearer)
        if response.status_code != 200:
            return None
        return sorted(response.json()["scopes"])

    # --- the dashboard --------------------------------------------------------------------

    @property
    def create_url(self) -> str:
        name = "org-api-key-create" if self.key == "api_key" else "org-app-create"
        return reverse(name, kwargs={"org_slug": self.organization.slug})

    def create_form(
        self, *, owner, scopes=("orders:read",), name="requested", justification="Nightly export"
    ):
        data = {"name": name, "owner": owner.pk, "scopes": list(scopes), "justification": justification}
        if self.key == "api_key":
            data.update(environment="live", submission=secrets.token_urlsafe(8))
        else:
            data.update(description="", audiences="", token_lifetime=900)
        return data

    def _kw(self, credential) -> dict:
        kw = {"org_slug": self.organization.slug}
        if self.key == "api_key":
            kw["key_id"] = credential.key_id
        else:
            kw["app_id"] = credential.pk
        return kw

    def url(self, credential, action: str = "detail") -> str:
        prefix = "org-api-key" if self.key == "api_key" else "org-app"
        if action == "issue":
            action = "issue" if self.key == "api_key" else "issue-secret"
        return reverse(f"{prefix}-{action}", kwargs=self._kw(credential))

    def latest(self):
        return self.model.objects.filter(organization=self.organization).order_by("-pk").first()

    def has_secret_material(self, credential) -> bool:
        if self.key == "api_key":
            return bool(self.reload(credential).digest)
        return credential.secrets.exists()

    @property
    def audit_prefix(self) -> str:
        return "credentials.api_key" if self.key == "api_key" else "tokens.m2m_app"


@pytest.fixture(params=["api_key", "m2m_app"])
def kit(request, organization, scopes) -> Kit:
    return Kit(key=request.param, organization=organization)


@pytest.fixture
def require_approval(organization, owner):
    def apply(**values):
        values = values or {"approve_new_api_keys": True, "approve_new_m2m_apps": True}
        return policy_update(organization=organization, actor=owner, **values)

    return apply
