"""The cut-over of a rotated key's successor judges the integration: the keys it replaced count.

What was wrong: after a rotation only the successor can be moved, while the old key keeps
working for its overlap (up to 7 days) and the service may still send it. The cut-over counted
only the moved key's use, so it read "quiet", offered (and the automatic run made) "Cut-over
complete" and revoked the successor while the replaced key still worked for days. Now the use of
every key of the rotation chain (`ApiKey.lineage`) counts, and the cut-over waits, saying so, while
a key it replaced still works; that key's overlap is left as its owner chose it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from credentials import usage
from credentials.api_keys import cutover
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke, api_key_rotate
from credentials.api_keys.verification import api_key_verify
from credentials.models import UsageBucket
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.django_db

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def moved_back(api_key, ago: timedelta) -> None:
    """Date the key's move (its application and the application's first secret) `ago` back."""
    when = timezone.now() - ago
    M2MApplication.objects.filter(moved_from_key=api_key).update(created=when)
    ClientSecret.objects.filter(application__moved_from_key=api_key).update(created_at=when)


def use(api_key, ago: timedelta, count: int = 1, outcome: str = "valid") -> timezone.datetime:
    """Record `count` uses of the key `ago` before now, as the usage roll-up writes a minute bucket."""
    start = (timezone.now() - ago).replace(second=0, microsecond=0)
    UsageBucket.objects.create(
        organization_id=api_key.organization_id,
        kind="api_key",
        credential_id=api_key.key_id,
        granularity="minute",
        start=start,
        outcome=outcome,
        count=count,
    )
    return start


@pytest.fixture
def rotated_then_moved(make_key, owner):
    """Return (old key, its plaintext, successor, its plaintext): rotated with a 7-day overlap, the
    successor moved three hours ago, with a 1-hour quiet period."""
    old, old_plain = make_key(name="nightly export")
    successor, successor_plain = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(days=7))
    api_key_move_to_m2m_app(api_key=successor, actor=owner)
    moved_back(successor, 3 * HOUR)
    ApiKey.objects.filter(pk=successor.pk).update(cutover_quiet_hours=1)
    return ApiKey.objects.get(pk=old.pk), old_plain, ApiKey.objects.get(pk=successor.pk), successor_plain


def state(api_key, **kwargs):
    return cutover.cutover_for(ApiKey.objects.get(pk=api_key.pk), **kwargs)


def test_the_replaced_keys_real_use_counts_as_the_moved_keys(
    rotated_then_moved, api_key_client, fresh_usage_counters
):
    old, old_plain, successor, _ = rotated_then_moved
    for _ in range(3):  # the service has not switched: its instances still send the old key
        assert api_key_client(old_plain).get("/api/v1/whoami").status_code == 200
    usage.flush()
    usage.rollup()
    now_state = state(successor)
    assert (now_state.last_hour, now_state.last_day) == (3, 3)
    assert now_state.last_use is not None and now_state.last_use > timezone.now() - 2 * MINUTE
    assert not now_state.ready


def test_the_cut_over_waits_while_the_replaced_key_works_and_leaves_its_overlap_alone(
    rotated_then_moved, owner
):
    old, old_plain, successor, successor_plain = rotated_then_moved
    waiting = state(successor)
    assert not waiting.ready
    assert waiting.blocker == (
        f"The key {old.display_prefix}, which this key replaced, still works until "
        f"{old.expires_at:%Y-%m-%d %H:%M} UTC (its rotation overlap), and the service may still send "
        "it. The cut-over waits until it stops working (or is revoked), and counts its use as this key's."
    )
    with pytest.raises(ValidationError) as refused:
        cutover.api_key_cutover_complete(api_key=successor, actor=owner)
    assert refused.value.code == "not_quiet" and old.display_prefix in refused.value.messages[0]
    ApiKey.objects.filter(pk=successor.pk).update(cutover_auto_revoke=True)
    assert cutover.cutovers_complete() == []
    assert api_key_verify(successor_plain).valid and api_key_verify(old_plain).valid
    assert ApiKey.objects.get(pk=old.pk).expires_at == old.expires_at  # the overlap is not cut short


def test_once_the_overlap_ends_the_quiet_period_runs_from_the_replaced_keys_last_use(rotated_then_moved):
    old, _, successor, _ = rotated_then_moved
    overlap_end = old.expires_at
    assert not state(successor, now=overlap_end - MINUTE).ready  # still working
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - 30 * MINUTE)  # its overlap ended
    use(old, 40 * MINUTE, 2)
    last = use(old, 10 * MINUTE, 5, outcome="expired")  # an instance still holding it: not switched either
    use(old, 5 * MINUTE, 4, outcome="invalid_secret")  # anyone who knows its key id: not a use
    waiting = state(successor)
    assert (waiting.last_hour, waiting.last_day) == (7, 7)
    assert waiting.blocker.startswith(
        "Used 7 times in the last hour (this key or the key it replaced). It can be revoked here once "
        "unused for 1 hour"
    )
    assert waiting.revocable_at == last + MINUTE + HOUR
    assert state(successor, now=waiting.revocable_at).ready


def test_a_revoked_replaced_key_no_longer_blocks_and_its_last_use_counts(rotated_then_moved, owner):
    old, old_plain, successor, _ = rotated_then_moved
    ApiKey.objects.filter(pk=old.pk).update(last_used_at=timezone.now() - 20 * MINUTE)
    api_key_revoke(api_key=old, actor=owner, reason="the service was switched")
    waiting = state(successor)
    assert "which this key replaced" not in waiting.blocker
    assert "Last used 20\xa0minutes ago (this key or the key it replaced)." in waiting.blocker
    assert state(successor, now=timezone.now() + 41 * MINUTE).ready


def test_every_key_of_a_longer_chain_counts(make_key, owner):
    first, _ = make_key(name="chain")
    second, _ = api_key_rotate(api_key=first, actor=owner, overlap=timedelta(0))
    third, _ = api_key_rotate(api_key=second, actor=owner, overlap=timedelta(0))
    api_key_move_to_m2m_app(api_key=third, actor=owner)
    moved_back(third, 3 * HOUR)
    use(first, 30 * MINUTE, 1, outcome="expired")
    use(second, 20 * MINUTE, 2, outcome="expired")
    use(third, 10 * MINUTE, 4)
    waiting = state(third)
    assert (waiting.last_hour, len(waiting.replaced)) == (7, 2)
    assert "(this key or the keys it replaced)" in waiting.blocker


def test_the_page_and_the_command_say_why(rotated_then_moved, owner_client):
    old, _, successor, _ = rotated_then_moved
    url = reverse("org-api-key-detail", args=["acme", successor.key_id])
    html = owner_client.get(url).content.decode()
    assert f"The key {old.display_prefix}, which this key replaced, still works until" in html
    assert 'disabled aria-describedby="cutover-state">Revoke the key</button>' in html
    out = StringIO()
    call_command("api_key_cutover", "--key-id", successor.key_id, "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert shown["ready"] is False and "which this key replaced, still works until" in shown["detail"]


def test_the_chain_costs_one_query_whatever_its_length(make_key, owner, django_assert_max_num_queries):
    """The cut-over reads the keys a successor replaced in one query (none for a key that replaced
    none), however many keys came before."""

    def cutover_queries(api_key) -> int:
        loaded = ApiKey.objects.get(pk=api_key.pk)
        with django_assert_max_num_queries(100) as captured:
            assert cutover.cutover_for(loaded) is not None
        return len(captured)

    alone, _ = make_key(name="alone")
    api_key_move_to_m2m_app(api_key=alone, actor=owner)
    second, _ = api_key_rotate(api_key=make_key(name="chain")[0], actor=owner, overlap=timedelta(hours=1))
    api_key_move_to_m2m_app(api_key=second, actor=owner)
    longer, _ = make_key(name="long chain")
    for _ in range(3):
        longer, _ = api_key_rotate(api_key=longer, actor=owner, overlap=timedelta(hours=1))
    api_key_move_to_m2m_app(api_key=longer, actor=owner)
    assert cutover_queries(second) == cutover_queries(longer) == cutover_queries(alone) + 1
