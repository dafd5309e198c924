"""A moved API key's cut-over: exact counts, the quiet-period rule, the one-click and automatic revoke."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys import cutover
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke
from credentials.api_keys.verification import api_key_verify
from credentials.governance.models import SuspensionReason
from credentials.governance.org_policy import policy_update
from credentials.governance.reviews import credential_suspend
from credentials.models import UsageBucket
from credentials.webhooks.models import WebhookDelivery
from credentials.webhooks.services import webhook_endpoint_create
from portal.models import AuditEvent
from tests.support.threads import run_together
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.clients.services import m2m_app_revoke
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.django_db

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def moved_at(api_key, when) -> None:
    """Date the key's move (its application and the application's first secret) back to `when`."""
    M2MApplication.objects.filter(moved_from_key=api_key).update(created=when)
    ClientSecret.objects.filter(application__moved_from_key=api_key).update(created_at=when)


@pytest.fixture
def moved(make_key, owner):
    """Return a moved key (its plaintext too), moved three days ago so only its use counts."""

    def make(name="nightly export", **choices):
        api_key, plaintext = make_key(name=name)
        api_key_move_to_m2m_app(api_key=api_key, actor=owner)
        moved_at(api_key, timezone.now() - timedelta(days=3))
        ApiKey.objects.filter(pk=api_key.pk).update(**choices)
        return ApiKey.objects.get(pk=api_key.pk), plaintext

    return make


def use(api_key, ago: timedelta, count: int = 1, outcome: str = "valid", granularity: str = "minute"):
    """Record `count` uses `ago` before now, as the usage roll-up writes them."""
    start = timezone.now() - ago
    start = (
        start.replace(second=0, microsecond=0)
        if granularity == "minute"
        else start.replace(minute=0, second=0, microsecond=0)
    )
    UsageBucket.objects.create(
        organization_id=api_key.organization_id,
        kind="api_key",
        credential_id=api_key.key_id,
        granularity=granularity,
        start=start,
        outcome=outcome,
        count=count,
    )
    return start


def state(api_key, **kwargs):
    return cutover.cutover_for(ApiKey.objects.get(pk=api_key.pk), **kwargs)


# --- counts and the quiet-period rule --------------------------------------------------------


def test_counts_are_exact_per_window_and_leave_out_wrong_secrets(moved):
    api_key, _ = moved()
    last = use(api_key, 10 * MINUTE, 3)
    use(api_key, 10 * MINUTE, 2, outcome="rate_limited")  # the integration, refused: still a use
    use(api_key, 5 * MINUTE, 4, outcome="invalid_secret")  # anyone who knows the key id: not a use
    use(api_key, 61 * MINUTE, 5)
    use(api_key, 23 * HOUR, 7, outcome="ip_denied")
    use(api_key, 25 * HOUR, 11)  # older than a day
    use(api_key, 90 * MINUTE, 13, granularity="hour")  # hour buckets never add to the counts
    now_state = state(api_key)
    assert (now_state.last_hour, now_state.last_day) == (5, 17)
    assert now_state.last_use == last + MINUTE


def test_the_quiet_period_starts_at_the_last_use(moved):
    api_key, _ = moved(cutover_quiet_hours=1)
    last = use(api_key, 20 * MINUTE, 3)
    waiting = state(api_key)
    assert not waiting.ready
    assert waiting.blocker.startswith(
        "Used 3 times in the last hour. It can be revoked here once unused for 1 hour"
    )
    assert waiting.revocable_at == last + MINUTE + HOUR
    assert not state(api_key, now=last + HOUR).ready  # a minute short
    assert state(api_key, now=last + MINUTE + HOUR).ready
    # A longer quiet period: the same use blocks for a day.
    ApiKey.objects.filter(pk=api_key.pk).update(cutover_quiet_hours=24)
    assert not state(api_key, now=last + 2 * HOUR).ready
    assert "Used 3 times in the last day" in state(api_key, now=last + 2 * HOUR).blocker
    assert state(api_key, now=last + MINUTE + 24 * HOUR).ready


def test_the_quiet_period_starts_at_the_move_when_the_key_was_quiet_before(moved):
    api_key, _ = moved(cutover_quiet_hours=24)
    moved_at(api_key, timezone.now() - 2 * HOUR)
    use(api_key, 30 * HOUR, 4, granularity="hour")
    waiting = state(api_key)
    assert not waiting.ready and waiting.blocker.startswith("Moved 2\xa0hours ago.")
    assert state(api_key, now=timezone.now() + 23 * HOUR).ready


def test_last_used_at_counts_before_the_roll_up_has_seen_the_use(moved):
    api_key, _ = moved(cutover_quiet_hours=1)
    assert state(api_key).ready
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now() - 5 * MINUTE)
    assert not state(api_key).ready
    assert "Last used 5\xa0minutes ago." in state(api_key).blocker


def test_a_use_older_than_the_minute_buckets_is_read_from_the_hour_buckets(moved):
    api_key, _ = moved(cutover_quiet_hours=168)
    hour = use(api_key, 50 * HOUR, 2, granularity="hour")
    assert state(api_key).last_use == hour + HOUR
    assert not state(api_key).ready
    assert state(api_key, now=hour + HOUR + 168 * HOUR).ready


def test_a_pending_or_suspended_application_blocks_the_cut_over(moved, make_key, organization, owner):
    api_key, _ = moved(cutover_quiet_hours=1)
    credential_suspend(
        credential=M2MApplication.objects.get(moved_from_key=api_key),
        actor=owner,
        reason=SuspensionReason.MANUAL,
    )
    assert "is suspended: the key is what still works" in state(api_key).blocker
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    pending_key, _ = make_key(name="waits")
    api_key_move_to_m2m_app(api_key=pending_key, actor=owner)
    assert "waits for approval" in state(pending_key).blocker


def test_a_key_never_moved_has_no_cut_over(make_key):
    api_key, _ = make_key()
    assert cutover.cutover_for(api_key) is None


# --- choosing and revoking -------------------------------------------------------------------


def test_choosing_the_quiet_period_is_audited_once_per_change(moved, owner):
    api_key, _ = moved()
    cutover.api_key_cutover_set(api_key=api_key, actor=owner, quiet_hours=1, auto_revoke=True)
    cutover.api_key_cutover_set(api_key=api_key, actor=owner, quiet_hours=1, auto_revoke=True)
    api_key.refresh_from_db()
    assert (api_key.cutover_quiet_hours, api_key.cutover_auto_revoke) == (1, True)
    events = AuditEvent.objects.filter(action="credentials.api_key.cutover_changed")
    assert events.count() == 1
    assert events.get().extra["quiet_period"] == "1 hour" and events.get().extra["auto_revoke"] is True


def test_bad_input_is_refused_clearly(moved, make_key, owner):
    api_key, _ = moved()
    with pytest.raises(ValidationError) as bad_period:
        cutover.api_key_cutover_set(api_key=api_key, actor=owner, quiet_hours=2, auto_revoke=False)
    assert bad_period.value.message_dict == {"quiet_hours": ["Choose one of: 1 hour, 24 hours, 7 days."]}
    never_moved, _ = make_key(name="never moved")
    for call in (
        lambda: cutover.api_key_cutover_set(
            api_key=never_moved, actor=owner, quiet_hours=1, auto_revoke=True
        ),
        lambda: cutover.api_key_cutover_complete(api_key=never_moved, actor=owner),
    ):
        with pytest.raises(ValidationError) as not_moved:
            call()
        assert not_moved.value.code == "not_moved"
    api_key_revoke(api_key=api_key, actor=owner, reason="by hand")
    with pytest.raises(ValidationError) as revoked:
        cutover.api_key_cutover_complete(api_key=api_key, actor=owner)
    assert revoked.value.code == "revoked" and revoked.value.messages == ["This key is already revoked."]
    with pytest.raises(ValidationError):
        cutover.api_key_cutover_set(api_key=api_key, actor=owner, quiet_hours=1, auto_revoke=True)
    assert not AuditEvent.objects.filter(action="credentials.api_key.cutover_changed").exists()


def test_the_one_click_revoke_is_refused_before_the_quiet_period(moved, owner):
    api_key, plaintext = moved(cutover_quiet_hours=1)
    use(api_key, 2 * MINUTE, 3)
    with pytest.raises(ValidationError) as early:
        cutover.api_key_cutover_complete(api_key=api_key, actor=owner)
    assert early.value.code == "not_quiet" and "Used 3 times in the last hour" in early.value.messages[0]
    assert api_key_verify(plaintext).valid


def test_the_revoke_is_the_normal_revoke_one_event_and_a_webhook(moved, owner, organization, settings):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    webhook_endpoint_create(
        organization=organization,
        url="http://127.0.0.1:9/hook",
        event_types=["revoked"],
        actor=owner,
    )
    api_key, plaintext = moved(cutover_quiet_hours=1)
    use(api_key, 2 * HOUR, 3)
    revoked = cutover.api_key_cutover_complete(api_key=api_key, actor=owner, via="dashboard")
    assert revoked.status == "revoked" and not api_key_verify(plaintext).valid
    application = M2MApplication.objects.get(moved_from_key=api_key)
    assert revoked.revocation_reason == (
        f"Cut-over complete: moved to the M2M application {application.client_id} and unused for 1 hour."
    )
    event = AuditEvent.objects.get(action="credentials.api_key.revoked")
    assert event.actor_id == owner.pk and event.extra["reason"].startswith("Cut-over complete")
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "credential.revoked" and api_key.key_id in str(delivery.payload["data"])


# --- the automatic revoke --------------------------------------------------------------------


def run_command(name: str = "complete_cutovers") -> str:
    out = StringIO()
    call_command(name, stdout=out)
    return out.getvalue()


def test_the_command_revokes_only_opted_in_quiet_keys_with_an_active_application_once(moved, owner):
    due, due_secret = moved("due", cutover_quiet_hours=1, cutover_auto_revoke=True)
    use(due, 3 * HOUR, 5)
    busy, _ = moved("busy", cutover_quiet_hours=1, cutover_auto_revoke=True)
    use(busy, 10 * MINUTE, 1)
    manual, _ = moved("manual", cutover_quiet_hours=1)
    suspended_app, _ = moved("app suspended", cutover_quiet_hours=1, cutover_auto_revoke=True)
    credential_suspend(
        credential=M2MApplication.objects.get(moved_from_key=suspended_app),
        actor=owner,
        reason=SuspensionReason.MANUAL,
    )
    assert run_command() == "Revoked 1 moved API key(s) after their cut-over.\n"
    assert run_command() == "Revoked 0 moved API key(s) after their cut-over.\n"  # idempotent
    statuses = dict(ApiKey.objects.values_list("name", "status"))
    assert statuses == {"due": "revoked", "busy": "active", "manual": "active", "app suspended": "active"}
    assert not api_key_verify(due_secret).valid
    event = AuditEvent.objects.get(action="credentials.api_key.revoked")
    assert event.actor_id is None and event.target_id == str(due.pk)
    assert event.extra["reason"].startswith("Cut-over complete") and event.extra["via"] == "cutover"
    assert "(automatic revoke)" in event.extra["reason"]


def test_under_debug_requests_complete_due_cut_overs(moved, owner_client, settings):
    settings.DEBUG = True
    settings.PORTAL_USAGE_ROLLUP_SECONDS = 0
    api_key, _ = moved(cutover_quiet_hours=1, cutover_auto_revoke=True)
    owner_client.get("/healthz")
    assert ApiKey.objects.get(pk=api_key.pk).status == "revoked"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_revoke_once(require_postgres, moved):
    keys_ = [moved(f"k{i}", cutover_quiet_hours=1, cutover_auto_revoke=True)[0] for i in range(3)]
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(len(cutover.cutovers_complete()))
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and sum(results) == 3
    assert AuditEvent.objects.filter(action="credentials.api_key.revoked").count() == 3
    assert set(ApiKey.objects.filter(pk__in=[k.pk for k in keys_]).values_list("status", flat=True)) == {
        "revoked"
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_cut_over_never_revokes_the_key_on_the_strength_of_an_application_revoked_meanwhile(
    require_postgres, moved, owner, monkeypatch
):
    """The cut-over revokes the key only while the application it moved to is active, judged under
    the application's row lock: an application revoked while the run judges it waits until the key's
    revoke is written, never committing between the judgement and the revoke (which would leave the
    integration with neither credential)."""
    api_key, _ = moved(cutover_quiet_hours=1, cutover_auto_revoke=True)
    application = M2MApplication.objects.get(moved_from_key=api_key)
    judged = threading.Event()
    real = cutover.cutover_for

    def judged_then_paused(key, **kwargs):
        found = real(key, **kwargs)
        if threading.current_thread().name == "cutover":
            judged.set()
            time.sleep(1.0)  # the application's revoke is sent meanwhile
        return found

    monkeypatch.setattr(cutover, "cutover_for", judged_then_paused)

    def revoke_application():
        assert judged.wait(timeout=10)
        return m2m_app_revoke(application=M2MApplication.objects.get(pk=application.pk), actor=owner)

    results = run_together(("cutover", cutover.cutovers_complete), ("revoke", revoke_application))
    assert not any(isinstance(result, BaseException) for result in results.values()), results
    assert M2MApplication.objects.get(pk=application.pk).status == "revoked"
    if ApiKey.objects.get(pk=api_key.pk).status == "active":
        return  # the cut-over saw the revoked application and kept the key: right too
    key_revoked = AuditEvent.objects.get(action="credentials.api_key.revoked").pk
    app_revoked = AuditEvent.objects.get(action="tokens.m2m_app.revoked").pk
    assert key_revoked < app_revoked, "the key was revoked for an application revoked meanwhile"


# --- the page and its two actions ------------------------------------------------------------


def page(client, api_key) -> str:
    return client.get(reverse("org-api-key-detail", args=["acme", api_key.key_id])).content.decode()


def test_the_page_shows_the_counts_the_chart_and_why_the_revoke_waits(owner_client, moved):
    api_key, _ = moved(cutover_quiet_hours=1)
    use(api_key, 3 * MINUTE, 3)
    use(api_key, 5 * HOUR, 2, granularity="minute")
    html = page(owner_client, api_key)
    assert (
        "Still used <strong>3</strong> times in the last hour / <strong>5</strong> in the last day." in html
    )
    assert "Use of this key, last hour" in html and 'id="cutover-chart-title"' in html
    assert "3 valid, 0 refused" in html  # the minute's bar
    assert "Used 3 times in the last hour. It can be revoked here once unused for 1 hour" in html
    assert 'disabled aria-describedby="cutover-state">Revoke the key</button>' in html
    assert reverse("org-api-key-cutover-revoke", args=["acme", api_key.key_id]) not in html


def test_the_dashboard_revokes_once_quiet(owner_client, moved):
    api_key, plaintext = moved(cutover_quiet_hours=1)
    use(api_key, 2 * HOUR, 4)
    html = page(owner_client, api_key)
    assert "Not used in the last day." not in html  # used 2 hours ago: still within the day
    assert "Not used for 1 hour: the cut-over is complete." in html
    url = reverse("org-api-key-cutover-revoke", args=["acme", api_key.key_id])
    assert f'action="{url}"' in html
    response = owner_client.post(url, follow=True)
    assert "was revoked: the cut-over is complete." in response.content.decode()
    assert not api_key_verify(plaintext).valid
    again = owner_client.post(url, follow=True).content.decode()
    assert "This key is already revoked." in again
    assert AuditEvent.objects.filter(action="credentials.api_key.revoked").count() == 1


def test_the_dashboard_refuses_an_early_revoke_and_a_bad_quiet_period(owner_client, moved):
    api_key, plaintext = moved(cutover_quiet_hours=24)
    use(api_key, 2 * HOUR, 4)
    early = owner_client.post(
        reverse("org-api-key-cutover-revoke", args=["acme", api_key.key_id]), follow=True
    ).content.decode()
    assert "The key was not revoked. Used 4 times in the last day." in early
    assert api_key_verify(plaintext).valid
    settings_url = reverse("org-api-key-cutover", args=["acme", api_key.key_id])
    bad = owner_client.post(settings_url, {"cutover-quiet_hours": "2"}, follow=True).content.decode()
    assert "Quiet period: Select a valid choice." in bad
    ok = owner_client.post(
        settings_url, {"cutover-quiet_hours": "1", "cutover-auto_revoke": "on"}, follow=True
    ).content.decode()
    assert "The cut-over settings were saved." in ok and "Then it is revoked automatically." not in ok
    assert "The key will be revoked automatically within a few minutes." in ok
    api_key.refresh_from_db()
    assert (api_key.cutover_quiet_hours, api_key.cutover_auto_revoke) == (1, True)


def test_a_key_never_moved_has_no_cut_over_panel_and_its_actions_say_so(owner_client, make_key):
    api_key, plaintext = make_key()
    assert 'id="cutover"' not in page(owner_client, api_key)
    for name, data in (
        ("org-api-key-cutover", {"cutover-quiet_hours": "1"}),
        ("org-api-key-cutover-revoke", {}),
    ):
        response = owner_client.post(reverse(name, args=["acme", api_key.key_id]), data, follow=True)
        assert (
            "This key was not moved to an M2M application, so it has no cut-over."
            in response.content.decode()
        )
    assert api_key_verify(plaintext).valid and ApiKey.objects.get(pk=api_key.pk).cutover_quiet_hours == 24


def test_others_may_not_touch_the_cut_over(member_client, outsider_client, moved):
    api_key, plaintext = moved(cutover_quiet_hours=1)
    url = reverse("org-api-key-cutover-revoke", args=["acme", api_key.key_id])
    assert member_client.post(url).status_code == 403  # a member, not the key's owner
    assert outsider_client.post(url).status_code == 404
    assert api_key_verify(plaintext).valid


# --- the command line ------------------------------------------------------------------------


def cli(*args: str) -> dict:
    out = StringIO()
    call_command("api_key_cutover", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_command_shows_sets_and_revokes(moved):
    api_key, plaintext = moved()
    last = use(api_key, 90 * MINUTE, 2)
    shown = cli("--key-id", api_key.display_prefix)
    assert shown["used_last_hour"] == 0 and shown["used_last_day"] == 2 and shown["ready"] is False
    assert shown["quiet_hours"] == 24 and shown["auto_revoke"] is False
    assert shown["last_use"] == (last + MINUTE).isoformat()
    with pytest.raises(CommandError, match="Used 2 times in the last day"):
        cli("--key-id", api_key.key_id, "--revoke")
    changed = cli("--key-id", api_key.key_id, "--quiet-hours", "1", "--auto-revoke")
    assert changed["quiet_hours"] == 1 and changed["auto_revoke"] is True and changed["ready"] is True
    assert cli("--key-id", api_key.key_id, "--no-auto-revoke")["auto_revoke"] is False
    revoked = cli("--key-id", api_key.key_id, "--revoke")
    assert revoked["status"] == "revoked" and not api_key_verify(plaintext).valid
    event = AuditEvent.objects.get(action="credentials.api_key.revoked")
    assert event.extra["via"] == "cli" and event.extra["reason"].startswith("Cut-over complete")


def test_the_command_refuses_bad_input(make_key):
    api_key, _ = make_key()
    with pytest.raises(CommandError, match="not moved"):
        cli("--key-id", api_key.key_id)
    with pytest.raises(CommandError, match="No API key"):
        cli("--key-id", "nope")
    with pytest.raises(CommandError, match="invalid choice"):
        cli("--key-id", api_key.key_id, "--quiet-hours", "2")
