"""The REST half of the authority matrix again, with the owner's and the admin's credentials
narrowed to one scope each (API keys and M2M tokens): every refusal is the table's, with nothing
changed. (The matrix's own manager credentials hold every scope.)"""

from __future__ import annotations

import pytest
from django.test import Client

from portal import authz
from portal.models import Membership, Role
from tests.factories import make_api_key, make_m2m_app
from tests.security import test_authority_matrix as matrix

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db, settings):
    settings.PORTAL_STEP_UP_SECONDS = 3600
    return matrix.build_world()


def _machine(world, person, role: str, scope: str, kind: str) -> matrix.Who:
    """A principal acting for `person` with one scope: their API key, or their application's token."""
    if kind == "api_key":
        _row, bearer = make_api_key(world.organization, person, name=f"{role} {scope}", scopes=[scope])
        world.secrets.add(bearer)
        label = f"{role}'s key [{scope}]"
    else:
        app, secret = make_m2m_app(world.organization, person, name=f"{role} app {scope}", scopes=[scope])
        world.secrets.add(secret)
        bearer = matrix._token(app, secret)
        label = f"{role}'s token [{scope}]"
    actor = matrix._machine_actor(person.pk, role, [scope], label)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {bearer}")
    return matrix.Who(label, kind, client, actor, actor, {person.pk}, on_dashboard=False)


def _walk_rest(world, principals):
    world.principals = principals
    selected = [c for c in matrix.cells(world) if c.rest]
    count, failures = matrix.walk(world, selected)
    assert count > 200, count
    assert failures == [], "\n".join(failures)


def test_rest_matrix_with_a_managers_single_scope_keys(world):
    admin = Membership.objects.get(organization=world.organization, role=Role.ADMIN).user
    principals = [
        _machine(world, person, role, scope, "api_key")
        for person, role in ((world.owner, Role.OWNER), (admin, Role.ADMIN))
        for scope in [*matrix.PORTAL_SCOPES, matrix.CUSTOMER_SCOPE]
    ]
    _walk_rest(world, principals)


def test_rest_matrix_with_single_scope_m2m_tokens(world):
    # The matrix's only token holds every scope; here each role's application holds one.
    principals = [
        _machine(world, membership.user, membership.role, scope, "access_token")
        for membership in Membership.objects.filter(organization=world.organization).select_related("user")
        for scope in [*matrix.PORTAL_SCOPES, matrix.CUSTOMER_SCOPE]
        if authz.scope_allowed(scope, membership.role)
    ]
    _walk_rest(world, principals)
