"""Command-line options take the same defaults as the dashboard and the REST API, and refuse a
value outside their range with a one-line error instead of clamping it."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from credentials.governance.org_policy import policy_update
from tests.factories import make_m2m_app
from tokens.models import ClientSecret

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_rotate_client_secret_defaults_to_the_organisations_rotation_overlap(organization, owner, scopes):
    """The dashboard's and REST's rotations default to the organisation's rotation overlap
    (docs/m2m.md); the command hard-coded 24 hours: with the policy at 0, the old secret of a
    rotation made without --overlap-hours kept working for a day."""
    policy_update(organization=organization, actor=None, default_rotation_overlap_hours=0)
    application, _ = make_m2m_app(organization, owner)
    old = ClientSecret.objects.get(application=application)
    _run("rotate_client_secret", "--client-id", application.client_id, "--json")
    old.refresh_from_db()
    assert old.expires_at is not None and old.expires_at <= timezone.now() + timedelta(minutes=1)


def test_an_explicit_overlap_still_wins(organization, owner, scopes):
    policy_update(organization=organization, actor=None, default_rotation_overlap_hours=0)
    application, _ = make_m2m_app(organization, owner)
    old = ClientSecret.objects.get(application=application)
    _run("rotate_client_secret", "--client-id", application.client_id, "--overlap-hours", "2")
    old.refresh_from_db()
    assert timedelta(hours=1) < old.expires_at - timezone.now() <= timedelta(hours=2)


@pytest.mark.parametrize("minutes", ["-5", "0", "100000"])
def test_rollup_usage_refuses_a_lookback_outside_its_range(minutes):
    """An operator catching up after an outage with --lookback-minutes 1440 was given 6 hours
    and told it worked; -5 and 0 became 1."""
    with pytest.raises(CommandError, match="from 1 to 360"):
        _run("rollup_usage", "--lookback-minutes", minutes)


GITHUB = "https://token.actions.githubusercontent.com"
SUBJECT = "repo:acme/billing:ref:refs/heads/main"


def test_add_federated_identity_is_audited_via_cli(organization, owner, scopes):
    """The other commands that change a credential write `via: cli`; a trust an operator added
    could not be told from any other change made without a person."""
    from portal.models import AuditEvent

    application, _ = make_m2m_app(organization, owner)
    _run(
        "add_federated_identity",
        "--client-id",
        application.client_id,
        "--issuer",
        GITHUB,
        "--subject",
        SUBJECT,
    )
    event = AuditEvent.objects.get(action="tokens.federated_identity.created")
    assert event.extra["via"] == "cli"


def test_add_federated_identity_refuses_an_overlong_name(organization, owner, scopes):
    """It kept the first 255 characters and exited 0, where the form and the other commands refuse."""
    from tokens.models import FederatedIdentity

    application, _ = make_m2m_app(organization, owner)
    with pytest.raises(CommandError, match="at most 255"):
        _run(
            "add_federated_identity", "--client-id", application.client_id, "--issuer", GITHUB,
            "--subject", SUBJECT, "--name", "n" * 300,
        )  # fmt: skip
    assert not FederatedIdentity.objects.exists()
