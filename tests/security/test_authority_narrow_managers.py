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


def test_rest_matrix_with_a_managers_single_scope_keys(world):

    admin = Membership.objects.get(organization=world.organization, role=Role.ADMIN).user
    principals = []
    for person, role in ((world.owner, Role.OWNER), (admin, Role.ADMIN)):
        for scope in [*matrix.PORTAL_SCOPES, matrix.CUSTOMER_SCOPE]:
            _row, plaintext = make_api_key(world.organization, person, name=f"{role} {scope}", scopes=[scope])
            world.secrets.add(plaintext)
            actor = matrix._machine_actor(person.pk, role, [scope], f"{role} key {scope}")
            principals.append(
                matrix.Who(
                    f"{role}'s key [{scope}]",
                    "api_key",
                    Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"),
                    actor,
                    actor,
                    {person.pk},
                    on_dashboard=False,
                )
            )
    world.principals = principals
    _walk_rest(world)


def _walk_rest(world):
    selected = [c for c in matrix.cells(world) if c.rest]
    count, failures = matrix.walk(world, selected)
    assert count > 200, count
    assert failures == [], "\n".join(failures)


def test_rest_matrix_with_single_scope_m2m_tokens(world):
    """The matrix's only token holds every scope; here each role's application holds one."""

    principals = []
    for membership in Membership.objects.filter(organization=world.organization).select_related("user"):
        person, role = membership.user, membership.role
        for scope in [*matrix.PORTAL_SCOPES, matrix.CUSTOMER_SCOPE]:
            if not authz.scope_allowed(scope, role):
                continue
            app, secret = make_m2m_app(world.organization, person, name=f"{role} app {scope}", scopes=[scope])
            world.secrets.add(secret)
            actor = matrix._machine_actor(person.pk, role, [scope], f"{role} token {scope}")
            principals.append(
                matrix.Who(
                    f"{role}'s token [{scope}]",
                    "access_token",
                    Client(HTTP_AUTHORIZATION=f"Bearer {matrix._token(app, secret)}"),
                    actor,
                    actor,
                    {person.pk},
                    on_dashboard=False,
                )
            )
    world.principals = principals
    _walk_rest(world)
