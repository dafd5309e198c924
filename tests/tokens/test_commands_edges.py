"""The M2M commands: a clear CommandError for out-of-range input (never a traceback), and `via: cli`
in their audit rows like the API-key commands."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.models import AuditEvent
from tests.factories import make_api_key, make_m2m_app
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

LONG_NAME = "x" * 256  # M2MApplication.name is a varchar(255); the REST and dashboard forms stop at 255


def _run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_m2m_app_refuses_an_overlong_name_with_a_command_error(organization, owner, scopes):
    # PostgreSQL: DataError traceback ("value too long for type character varying(255)") after the
    # audit row and scope checks ran; SQLite: silently stores a name no other path accepts.
    with pytest.raises(CommandError):
        _run("create_m2m_app", "--org", "acme", "--name", LONG_NAME, "--owner", owner.email, "--json")
    assert not M2MApplication.objects.filter(name=LONG_NAME).exists()


def test_move_api_key_to_m2m_app_refuses_an_overlong_name_with_a_command_error(organization, owner, scopes):
    key, _ = make_api_key(organization, owner)
    with pytest.raises(CommandError):
        _run("move_api_key_to_m2m_app", "--key-id", key.key_id, "--name", LONG_NAME, "--json")
    assert not M2MApplication.objects.filter(name=LONG_NAME).exists()


def test_rotate_client_secret_with_a_huge_overlap_is_a_command_error(organization, owner, scopes):
    # timedelta(hours=99999999999999) raises OverflowError in the command, before the service's
    # "between 0 and 7 days" check: a traceback instead of the clear message.
    app, _ = make_m2m_app(organization, owner)
    with pytest.raises(CommandError):
        _run("rotate_client_secret", "--client-id", app.client_id, "--overlap-hours", "99999999999999")


def _via_of(action: str) -> str | None:
    event = AuditEvent.objects.filter(action=action).order_by("-pk").first()
    assert event is not None, action
    return (event.extra or {}).get("via")


def test_m2m_commands_record_via_cli_like_create_api_key(organization, owner, scopes):
    # create_api_key and api_key_cutover record `via: cli`; the M2M commands record no `via`, so
    # the audit log cannot tell an operator's command from any other actor-less change.
    _run("create_api_key", "--org", "acme", "--name", "k", "--owner", owner.email, "--json")
    assert _via_of("credentials.api_key.created") == "cli"
    _run("create_m2m_app", "--org", "acme", "--name", "a", "--owner", owner.email, "--json")
    assert _via_of("tokens.m2m_app.created") == "cli"
    app = M2MApplication.objects.get(name="a")
    _run("rotate_client_secret", "--client-id", app.client_id, "--json")
    assert _via_of("tokens.m2m_app.secret_rotated") == "cli"
