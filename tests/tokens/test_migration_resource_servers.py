"""Migration tokens 0006: the catalogue starts with the default audience and every audience in use."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.support.migrations import migrate_to, migrated_back_to

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("tokens", "0005_client_public_keys")]
AFTER = [("tokens", "0006_resource_servers")]


@pytest.fixture
def old_apps():
    """The historical models just before 0006; every app migrated back to its latest state afterwards."""
    with migrated_back_to(BEFORE) as apps:
        yield apps


def test_forwards_registers_the_default_and_every_audience_in_use(old_apps):
    Organization = old_apps.get_model("portal", "Organization")
    User = old_apps.get_model("portal", "User")
    M2MApplication = old_apps.get_model("tokens", "M2MApplication")
    acme = Organization.objects.create(slug="acme", name="Acme")
    globex = Organization.objects.create(slug="globex", name="Globex")
    initech = Organization.objects.create(slug="initech", name="Initech")
    user = User.objects.create(email="owner@acme.test")

    def app(organization, name, audiences):
        M2MApplication.objects.create(
            organization=organization,
            owner=user,
            name=name,
            client_id=f"m2m_{name}",
            allowed_audiences=audiences,
        )

    app(acme, "a1", ["https://orders.example.com", " https://acme-only.example "])
    app(acme, "a2", ["https://orders.example.com", settings.PORTAL_DEFAULT_AUDIENCE, ""])
    app(globex, "g1", ["https://orders.example.com"])
    app(initech, "i1", [])

    new_apps = migrate_to(AFTER)
    ResourceServer = new_apps.get_model("tokens", "ResourceServer")
    servers = {s.identifier: s for s in ResourceServer.objects.all()}
    assert set(servers) == {
        settings.PORTAL_DEFAULT_AUDIENCE,
        "https://orders.example.com",
        "https://acme-only.example",
    }
    default = servers[settings.PORTAL_DEFAULT_AUDIENCE]
    assert default.name == "Identity Portal API" and default.is_active
    assert not default.organizations.exists() and not default.scopes.exists()
    # Each audience in use stays open to exactly the organisations using it, accepting any scope.
    orders = servers["https://orders.example.com"]
    assert orders.is_active and not orders.scopes.exists()
    assert sorted(orders.organizations.values_list("slug", flat=True)) == ["acme", "globex"]
    assert list(servers["https://acme-only.example"].organizations.values_list("slug", flat=True)) == ["acme"]

    # Nothing in use breaks: the applications still name exactly what they named.
    stored = dict(
        new_apps.get_model("tokens", "M2MApplication").objects.values_list("name", "allowed_audiences")
    )
    assert stored["g1"] == ["https://orders.example.com"]
