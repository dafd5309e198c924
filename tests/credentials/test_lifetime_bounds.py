"""Lifetimes stay within ten years or the policy maximum, with no overflow (issue 14, item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request
from credentials.api_keys.verification import api_key_verify
from credentials.governance.models import OrganizationPolicy
from credentials.lifetimes import MAX_LIFETIME_DAYS, add_clamped, expiry_in_days, successor_expiry

pytestmark = pytest.mark.django_db

URL = "/api/v1/orgs/acme/api-keys/"
FAR = "9999-12-31T00:00:00Z"


def _policy(organization, **fields) -> None:
    OrganizationPolicy.objects.update_or_create(organization=organization, defaults=fields)
    organization.refresh_from_db()


# --- REST ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires_at",
    [FAR, (timezone.now() + timedelta(days=MAX_LIFETIME_DAYS + 2)).isoformat(), "9999-12-31T23:59:59-05:00"],
    # Ids that do not depend on the clock: pytest-xdist workers must collect the same tests.
    ids=["far", "two-days-past-the-limit", "year-9999-offset"],
)
def test_rest_refuses_an_expiry_beyond_ten_years_as_a_field_error(owner_client, scopes, expires_at):
    before = ApiKey.objects.count()
    response = owner_client.post(
        URL,
        {"name": "far", "scopes": ["orders:read"], "expires_at": expires_at},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["expires_at"]
    assert ApiKey.objects.count() == before


def test_rest_accepts_ten_years_and_refuses_beyond_the_policy(owner_client, organization, scopes):
    ten_years = (timezone.now() + timedelta(days=MAX_LIFETIME_DAYS)).isoformat()
    response = owner_client.post(
        URL,
        {"name": "long", "scopes": ["orders:read"], "expires_at": ten_years},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert owner_client.post(
        URL, {"name": "x", "expires_in_days": MAX_LIFETIME_DAYS + 1}, content_type="application/json"
    ).json() == {"expires_in_days": [f"Ensure this value is less than or equal to {MAX_LIFETIME_DAYS}."]}

    _policy(organization, api_key_max_lifetime_days=30)
    before = ApiKey.objects.count()
    for body in ({"expires_at": ten_years}, {"expires_in_days": 31}):
        response = owner_client.post(URL, {"name": "x", **body}, content_type="application/json")
        assert response.status_code == 400, response.content
        assert response.json() == {"expires_at": ["Your organisation allows at most 30 days."]}
    assert ApiKey.objects.count() == before


def test_rotating_a_key_that_expires_in_9999_gives_a_bounded_successor(owner_client, make_key):
    # A key stored before these bounds, with the latest expiry the old code accepted.
    api_key, _plaintext = make_key(name="legacy")
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=datetime(9999, 12, 31, tzinfo=UTC))
    for _ in range(2):  # the successor of the successor too
        response = owner_client.post(
            f"{URL}{api_key.key_id}/rotate/", {"overlap_hours": 1}, content_type="application/json"
        )
        assert response.status_code == 201, response.content
        successor = response.json()["successor"]
        expires = datetime.fromisoformat(successor["expires_at"])
        assert expires <= timezone.now() + timedelta(days=MAX_LIFETIME_DAYS)
        assert expires >= timezone.now() + timedelta(days=MAX_LIFETIME_DAYS - 1)
        assert api_key_verify(successor["key"]).valid
        api_key = ApiKey.objects.get(key_id=successor["id"])


def test_rotation_keeps_a_lifetime_within_the_policy_maximum(owner_client, organization, make_key):
    api_key, _ = make_key(expires_at=timezone.now() + timedelta(days=365))
    _policy(organization, api_key_max_lifetime_days=30)  # the policy tightened since
    response = owner_client.post(f"{URL}{api_key.key_id}/rotate/", {}, content_type="application/json")
    assert response.status_code == 201, response.content
    expires = datetime.fromisoformat(response.json()["successor"]["expires_at"])
    assert expires <= timezone.now() + timedelta(days=30)


def test_the_overlap_ends_exactly_and_the_successor_keeps_the_lifetime(owner_client, make_key):
    api_key, _ = make_key(expires_at=timezone.now() + timedelta(days=60))
    response = owner_client.post(
        f"{URL}{api_key.key_id}/rotate/", {"overlap_hours": 5}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    old = ApiKey.objects.get(pk=api_key.pk)
    assert old.expires_at - old.rotated_at == timedelta(hours=5)
    successor = ApiKey.objects.get(replaces=old)
    # The old key's 60 days, counted from the rotation.
    assert abs((successor.expires_at - successor.created_at) - timedelta(days=60)) < timedelta(seconds=5)


def test_rotating_a_key_without_expiry_gives_the_successor_the_policy_maximum(
    owner_client, organization, make_key
):
    # No expiry: allowed before the organisation set a maximum (docs/governance.md: "a key
    # created without expiry gets the maximum"); its successor is a new key and gets it too.
    api_key, _ = make_key()
    _policy(organization, api_key_max_lifetime_days=30)
    response = owner_client.post(f"{URL}{api_key.key_id}/rotate/", {}, content_type="application/json")
    assert response.status_code == 201, response.content
    expires = datetime.fromisoformat(response.json()["successor"]["expires_at"])
    assert timezone.now() + timedelta(days=29) < expires <= timezone.now() + timedelta(days=30)
    assert ApiKey.objects.get(key_id=response.json()["successor"]["id"]).expires_at == expires


def test_rotating_a_key_without_expiry_and_without_a_maximum_keeps_no_expiry(owner_client, make_key):
    api_key, _ = make_key()
    response = owner_client.post(f"{URL}{api_key.key_id}/rotate/", {}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["successor"]["expires_at"] is None


def test_dashboard_rotation_shows_the_successors_policy_expiry(owner_client, organization, make_key):
    api_key, _ = make_key()
    _policy(organization, api_key_max_lifetime_days=30)
    rotate_url = reverse("org-api-key-rotate", args=["acme", api_key.key_id])
    response = owner_client.post(rotate_url, {"submission": "r" * 22, "overlap_hours": "1"})
    assert response.status_code == 200, response.content
    successor = ApiKey.objects.get(replaces=api_key)
    assert successor.expires_at is not None
    html = response.content.decode()
    assert f"<dt>Expires</dt><dd>{successor.expires_at:%Y-%m-%d %H:%M} UTC</dd>" in html


# --- dashboard ------------------------------------------------------------------------------------


def _dashboard_create(client: Client, owner, days: int):
    return client.post(
        reverse("org-api-key-create", args=["acme"]),
        {
            "name": "dash",
            "owner": owner.pk,
            "scopes": ["orders:read"],
            "environment": "live",
            "expires_in_days": str(days),
            "submission": "s" * 22,
        },
    )


def test_dashboard_shows_the_bound_on_the_days_field(owner_client, owner, organization, scopes):
    before = ApiKey.objects.count()
    response = _dashboard_create(owner_client, owner, MAX_LIFETIME_DAYS + 1)
    assert response.status_code == 400
    assert response.context["form"].errors["expires_in_days"]
    _policy(organization, api_key_max_lifetime_days=30)
    response = _dashboard_create(owner_client, owner, 31)
    assert response.status_code == 400
    assert response.context["form"].errors["expires_in_days"] == ["Your organisation allows at most 30 days."]
    assert not response.context["form"].non_field_errors()
    assert ApiKey.objects.count() == before


# --- command ------------------------------------------------------------------------------------


def _command(*args: str) -> None:
    call_command(
        "create_api_key", "--org", "acme", "--name", "cli", "--owner", "owner@acme.test", *args, "--json"
    )


def test_create_api_key_command_refuses_lifetimes_out_of_bounds(owner, organization, scopes):
    before = ApiKey.objects.count()
    with pytest.raises(CommandError, match="between 1 and 3650"):
        _command("--expires-in-days", "3651")
    with pytest.raises(CommandError, match="between 1 and 3650"):
        _command("--expires-in-days", str(10**12))
    _policy(organization, api_key_max_lifetime_days=30)
    with pytest.raises(CommandError, match="--expires-in-days 31: Your organisation allows at most 30 days."):
        _command("--expires-in-days", "31")
    assert ApiKey.objects.count() == before


# --- services and arithmetic ----------------------------------------------------------------------


def test_services_refuse_far_expiries_with_a_validation_error(organization, owner, scopes, make_key):
    with pytest.raises(ValidationError) as caught:
        api_key_create(
            organization=organization,
            name="far",
            owner=owner,
            scopes=[],
            actor=owner,
            expires_at=datetime(9999, 12, 31, tzinfo=UTC),
        )
    assert list(caught.value.error_dict) == ["expires_at"]
    with pytest.raises(ValidationError):
        api_key_request(
            organization=organization,
            name="far",
            owner=owner,
            scopes=[],
            requester=owner,
            justification="because",
            lifetime_days=10**12,  # a timedelta that large cannot even be built
        )


def test_m2m_public_keys_and_secrets_are_bounded_too(organization, owner):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tokens.clients.services import client_public_key_add, client_secret_rotate, m2m_app_create
    from tokens.models import M2MApplication

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    application, _ = m2m_app_create(
        organization=organization,
        name="pkjwt",
        owner=owner,
        actor=owner,
        auth_method=M2MApplication.AuthMethod.PRIVATE_KEY_JWT,
        public_key=pem,
    )
    other = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValidationError) as caught:
        client_public_key_add(
            application=application,
            jwk_or_pem=other,
            actor=owner,
            expires_at=datetime(9999, 12, 31, tzinfo=UTC),
        )
    assert "expires_at" in caught.value.error_dict
    # Client secrets get the policy's maximum; a policy cannot ask for more than ten years.
    _policy(organization, client_secret_max_lifetime_days=MAX_LIFETIME_DAYS)
    app, _ = m2m_app_create(organization=organization, name="secret", owner=owner, actor=owner)
    secret, _ = client_secret_rotate(application=app, actor=owner, overlap=timedelta(0))
    assert secret.expires_at <= timezone.now() + timedelta(days=MAX_LIFETIME_DAYS)


def test_arithmetic_clamps_instead_of_overflowing():
    latest = datetime.max.replace(tzinfo=UTC)
    assert add_clamped(latest - timedelta(days=1), timedelta(days=10)) == latest
    assert add_clamped(datetime.min.replace(tzinfo=UTC), -timedelta(days=1)) == datetime.min.replace(
        tzinfo=UTC
    )
    assert expiry_in_days(10**12) == latest
    now = timezone.now()
    created = datetime(2020, 1, 1, tzinfo=UTC)
    assert successor_expiry(created_at=created, expires_at=latest, now=now) == now + timedelta(
        days=MAX_LIFETIME_DAYS
    )
    assert successor_expiry(created_at=created, expires_at=None, now=now) is None
    assert successor_expiry(created_at=created, expires_at=latest, now=now, max_days=30) == now + timedelta(
        days=30
    )
