"""Staged rotation: the next signing key is published before it signs, so verifiers that cache the
JWKS (a stock PyJWT `PyJWKClient`, or any cache of up to PORTAL_JWKS_MAX_AGE_SECONDS) already
hold it when the first token it signs arrives."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import jwt
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent
from tests.portal.test_account_security import make_stale
from tests.support.threads import run_together
from tokens.models import SigningKey
from tokens.signing import keys
from tokens.signing.services import (
    retired_key_publish_for,
    signing_key_ensure,
    signing_key_rotate,
    signing_key_stage,
    signing_key_unpublish,
)

pytestmark = pytest.mark.django_db


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def published_kids(client) -> list[str]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return [key["kid"] for key in response.json()["keys"]]


def whoami(client, token: str) -> int:
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_signing_key", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def staged_since(key: SigningKey, seconds: int) -> None:
    """Make the staged key look published for `seconds` already."""
    SigningKey.objects.filter(pk=key.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


# --- The service ----------------------------------------------------------------------------------


def test_staging_publishes_the_next_key_without_signing_with_it(client, app, token_for):
    old_kid = kid_of(token_for(app))

    staged = signing_key_stage(actor=None)

    assert staged.status == SigningKey.Status.NEXT and staged.is_published
    assert kid_of(token_for(app)) == old_kid  # still signed by the active key
    # Both published, the signing key first (clients that take the first key get the right one).
    assert published_kids(client) == [old_kid, staged.kid]
    event = AuditEvent.objects.get(action="tokens.signing_key.staged")
    assert event.extra == {"kid": staged.kid, "algorithm": "RS256"}


def test_rotation_promotes_the_staged_key(client, app, token_for):
    old_token = token_for(app)
    old = SigningKey.objects.get(status="active")
    staged = signing_key_stage(actor=None, algorithm="ES256")
    staged_since(staged, 600)

    key, previous = signing_key_rotate(actor=None)

    assert (key.pk, previous.pk) == (staged.pk, old.pk)
    new_token = token_for(app)
    assert kid_of(new_token) == staged.kid and jwt.get_unverified_header(new_token)["alg"] == "ES256"
    assert SigningKey.objects.count() == 2  # no key was made at the rotation
    old.refresh_from_db()
    assert old.status == "retired"
    assert old.publish_until >= timezone.now() + retired_key_publish_for() - timedelta(minutes=1)
    # The old key stays published (second now) until publish_until; its tokens keep validating.
    assert published_kids(client) == [staged.kid, old.kid]
    assert whoami(client, old_token) == 200 and whoami(client, new_token) == 200
    SigningKey.objects.filter(pk=old.pk).update(publish_until=timezone.now() - timedelta(seconds=1))
    keys.forget_public_keys()
    assert published_kids(client) == [staged.kid]
    assert whoami(client, old_token) == 401

    event = AuditEvent.objects.get(action="tokens.signing_key.rotated")
    assert event.extra["kid"] == staged.kid and event.extra["previous_kid"] == old.kid
    assert event.extra["algorithm"] == "ES256"
    assert 600 <= event.extra["published_for_seconds"] < 660
    staged.refresh_from_db()
    assert event.extra["staged_at"] == staged.created_at.isoformat()


def test_rotation_without_a_staged_key_makes_a_new_one_as_before(app, token_for):
    old_kid = kid_of(token_for(app))
    key, previous = signing_key_rotate(actor=None)
    assert previous.kid == old_kid and key.kid != old_kid and key.algorithm == "RS256"
    extra = AuditEvent.objects.get(action="tokens.signing_key.rotated").extra
    assert extra["staged_at"] is None and extra["published_for_seconds"] is None


def test_a_second_staging_is_refused():
    signing_key_ensure()
    first = signing_key_stage(actor=None)
    with pytest.raises(ValidationError) as refused:
        signing_key_stage(actor=None, algorithm="ES256")
    assert refused.value.code == "staged" and first.kid in refused.value.messages[0]
    assert list(SigningKey.objects.filter(status="next")) == [first]


def test_at_most_one_next_key_is_a_database_constraint():
    signing_key_stage(actor=None)
    encrypted, jwk = keys.generate_key_material("RS256")
    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.create(
            kid=jwk["kid"], algorithm="RS256", encrypted_private_key=encrypted, public_jwk=jwk, status="next"
        )


def test_rotating_to_another_algorithm_than_the_staged_keys_is_refused(app, token_for):
    old_kid = kid_of(token_for(app))
    staged = signing_key_stage(actor=None, algorithm="RS256")

    with pytest.raises(ValidationError) as refused:
        signing_key_rotate(actor=None, algorithm="ES256")

    assert refused.value.code == "staged_algorithm" and staged.kid in refused.value.messages[0]
    assert SigningKey.objects.get(status="active").kid == old_kid  # nothing changed
    assert SigningKey.objects.get(status="next") == staged
    assert kid_of(token_for(app)) == old_kid
    # Asking for the staged key's own algorithm promotes it.
    key, _previous = signing_key_rotate(actor=None, algorithm="RS256")
    assert key == staged


def test_unpublishing_the_staged_key_withdraws_it(client, django_capture_on_commit_callbacks):
    active = signing_key_ensure()
    staged = signing_key_stage(actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        signing_key_unpublish(key=staged, actor=None)

    staged.refresh_from_db()
    assert staged.status == "retired" and not staged.is_published and staged.retired_at is not None
    assert published_kids(client) == [active.kid]
    assert AuditEvent.objects.filter(action="tokens.signing_key.unpublished", extra__kid=staged.kid).exists()
    # The rotation no longer sees it: it makes a new key; and a new staging is allowed.
    key, _previous = signing_key_rotate(actor=None)
    assert key.kid not in (active.kid, staged.kid)
    assert signing_key_stage(actor=None).status == "next"


# --- The command ----------------------------------------------------------------------------------


def test_command_stages_then_promotes(client, app, token_for, settings):
    settings.PORTAL_JWKS_MAX_AGE_SECONDS = 300
    old_kid = kid_of(token_for(app))

    out, _err = run("--stage")
    staged = SigningKey.objects.get(status="next")
    assert f"Staged signing key: {staged.kid} (RS256)" in out
    assert "at least PORTAL_JWKS_MAX_AGE_SECONDS (300 s) before `rotate_signing_key`" in out
    assert kid_of(token_for(app)) == old_kid

    staged_since(staged, 400)
    out, err = run()
    assert f"Active signing key: {staged.kid} (RS256)." in out
    assert "It was staged 400 s ago" in out and f"Retired key {old_kid} stays published until" in out
    assert "WARNING" not in out + err
    assert kid_of(token_for(app)) == staged.kid


def test_command_warns_when_the_staged_key_was_published_too_briefly(settings):
    settings.PORTAL_JWKS_MAX_AGE_SECONDS = 300
    signing_key_ensure()
    run("--stage", "--algorithm", "ES256")
    out, err = run()
    assert re.search(r"It was staged \d s ago", out)
    assert err.startswith("WARNING: that is less than PORTAL_JWKS_MAX_AGE_SECONDS (300 s)")
    assert SigningKey.objects.get(status="active").algorithm == "ES256"


def test_command_refusals_are_one_line_errors():
    signing_key_ensure()
    run("--stage")
    staged = SigningKey.objects.get(status="next")

    with pytest.raises(CommandError) as again:
        run("--stage")
    assert str(again.value).count("\n") == 0 and "already staged" in str(again.value)

    with pytest.raises(CommandError) as other_algorithm:
        run("--algorithm", "ES256")
    message = str(other_algorithm.value)
    assert message.count("\n") == 0 and staged.kid in message
    assert "rotate_signing_key --withdraw-staged" in message
    assert SigningKey.objects.get(status="next") == staged  # nothing changed

    with pytest.raises(CommandError):
        run("--stage", "--unpublish-previous")


def test_command_withdraws_the_staged_key(client, django_capture_on_commit_callbacks):
    active = signing_key_ensure()
    with pytest.raises(CommandError, match="No signing key is staged"):
        run("--withdraw-staged")
    run("--stage")
    staged = SigningKey.objects.get(status="next")
    with django_capture_on_commit_callbacks(execute=True):
        out, _err = run("--withdraw-staged")
    assert f"Withdrew staged key {staged.kid}" in out
    assert published_kids(client) == [active.kid]


def test_unpublish_previous_promotes_the_staged_key_and_withdraws_the_old_one(
    client, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 0  # one process: nobody else to wait for
    old = signing_key_ensure()
    staged = signing_key_stage(actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        out, _err = run("--unpublish-previous")
    assert f"Active signing key: {staged.kid}" in out and f"Withdrew key {old.kid}" in out
    assert published_kids(client) == [staged.kid]


# --- The admin ------------------------------------------------------------------------------------


def admin_action(client, action: str):
    url = reverse("admin:tokens_signingkey_changelist")
    return client.post(
        url,
        {"action": action, "_selected_action": [SigningKey.objects.first().pk]},
        HTTP_REFERER="http://testserver" + url,
        follow=True,
    )


def test_admin_stages_and_rotates(staff_client):
    active = signing_key_ensure()
    response = admin_action(staff_client, "stage_es256")
    staged = SigningKey.objects.get(status="next")
    assert staged.algorithm == "ES256" and staged.kid in response.content.decode()

    response = admin_action(staff_client, "stage_rs256")
    assert "already staged" in response.content.decode()
    response = admin_action(staff_client, "rotate_rs256")
    assert "is staged as the next signing key and is ES256" in response.content.decode()
    assert SigningKey.objects.get(status="active") == active

    admin_action(staff_client, "rotate_es256")
    assert SigningKey.objects.get(status="active") == staged
    changelist = staff_client.get(reverse("admin:tokens_signingkey_changelist")).content.decode()
    assert 'field-status">Published, next<' not in changelist  # promoted: active now
    admin_action(staff_client, "stage_rs256")
    changelist = staff_client.get(reverse("admin:tokens_signingkey_changelist")).content.decode()
    assert 'field-status">Published, next<' in changelist


def test_admin_staging_asks_for_step_up(staff_client):
    signing_key_ensure()
    make_stale(staff_client)
    response = staff_client.post(
        reverse("admin:tokens_signingkey_changelist"),
        {"action": "stage_rs256", "_selected_action": [SigningKey.objects.get().pk]},
    )
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate"))
    assert not SigningKey.objects.filter(status="next").exists()


# --- A stock PyJWT client -------------------------------------------------------------------------


def _stock_client(live_server) -> tuple[jwt.PyJWKClient, list[int]]:
    """A `PyJWKClient` as a resource server would run it (default 30 s cooldown), counting fetches."""
    jwks_client = jwt.PyJWKClient(live_server.url + "/.well-known/jwks.json")
    fetches = []
    fetch = jwks_client.fetch_data

    def counted():
        fetches.append(1)
        return fetch()

    jwks_client.fetch_data = counted
    return jwks_client, fetches


def _verify(jwks_client: jwt.PyJWKClient, token: str) -> dict:
    return jwt.decode(
        token,
        jwks_client.get_signing_key_from_jwt(token),
        algorithms=["RS256", "ES256"],
        audience=django_settings.PORTAL_DEFAULT_AUDIENCE,
        issuer=django_settings.PORTAL_ISSUER,
    )


@pytest.mark.django_db(transaction=True)
def test_a_stock_pyjwkclient_verifies_the_first_token_of_a_staged_key_without_refetching(
    live_server, app, token_for
):
    before = token_for(app)
    run("--stage")
    jwks_client, fetches = _stock_client(live_server)
    _verify(jwks_client, before)  # the resource server's routine fetch, after the staging

    run()
    after = token_for(app)

    assert kid_of(after) == SigningKey.objects.get(status="active").kid != kid_of(before)
    assert _verify(jwks_client, after)["client_id"] == app.client_id
    _verify(jwks_client, before)  # the retired key's tokens too
    assert len(fetches) == 1


@pytest.mark.django_db(transaction=True)
def test_without_staging_the_stock_client_refuses_the_new_key(live_server, app, token_for):
    """The gap staging closes: a rotation right after the client's fetch leaves it without the key."""
    before = token_for(app)
    jwks_client, fetches = _stock_client(live_server)
    _verify(jwks_client, before)

    run()
    with pytest.raises(jwt.PyJWKClientError):
        _verify(jwks_client, token_for(app))
    assert len(fetches) == 1


# --- Races (PostgreSQL) ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_stagings_leave_one_next_key(require_postgres):
    signing_key_ensure()
    results = run_together(*((f"stage-{n}", lambda: signing_key_stage(actor=None)) for n in range(4)))
    staged = [r for r in results.values() if isinstance(r, SigningKey)]
    refused = [r for r in results.values() if isinstance(r, ValidationError)]
    assert len(staged) == 1 and len(refused) == 3, results
    assert all(r.code == "staged" for r in refused)
    assert list(SigningKey.objects.filter(status="next")) == staged
    assert AuditEvent.objects.filter(action="tokens.signing_key.staged").count() == 1


def _assert_consistent() -> None:
    assert SigningKey.objects.filter(status="active").count() == 1
    assert SigningKey.objects.filter(status="next").count() <= 1
    # Every retired key stays published for the tokens it signed (a fresh retirement).
    for key in SigningKey.objects.filter(status="retired"):
        assert key.retired_at is not None and key.publish_until > timezone.now() + timedelta(hours=24)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rotation_racing_a_staging_leaves_a_consistent_state(require_postgres):
    signing_key_ensure()
    for _round in range(3):
        results = run_together(
            ("rotate", lambda: signing_key_rotate(actor=None)),
            ("stage", lambda: signing_key_stage(actor=None, algorithm="ES256")),
        )
        assert isinstance(results["rotate"], tuple), results
        staged = results["stage"]
        # A staging is refused only when the last round's staged key is still waiting.
        assert isinstance(staged, SigningKey) or getattr(staged, "code", None) == "staged", results
        _assert_consistent()
        if isinstance(staged, SigningKey):
            # Either the rotation promoted it, or it waits as the next key.
            staged.refresh_from_db()
            assert staged.status in ("active", "next")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_with_a_staged_key_promote_it_once(require_postgres):
    first = signing_key_ensure()
    staged = signing_key_stage(actor=None)
    results = run_together(
        ("rotate-1", lambda: signing_key_rotate(actor=None)),
        ("rotate-2", lambda: signing_key_rotate(actor=None)),
    )
    assert all(isinstance(r, tuple) for r in results.values()), results
    _assert_consistent()
    # One rotation promoted the staged key; the other rotated on top of it to a new key.
    assert SigningKey.objects.count() == 3 and not SigningKey.objects.filter(status="next").exists()
    promoted = [key for key, _previous in results.values() if key.pk == staged.pk]
    assert len(promoted) == 1
    first.refresh_from_db()
    assert first.status == "retired"
