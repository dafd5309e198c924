"""The per-process memo of valid keys: it answers only what the per-process cache entry behind it would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache, caches
from django.utils import timezone
from prometheus_client import REGISTRY

from credentials.api_keys import verification
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke
from credentials.api_keys.verification import api_key_verify
from portal.infra.cache import PortalLocMemCache
from portal.infra.crypto import crc32_base62

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_memo():
    verification._memo.clear()
    yield
    verification._memo.clear()


def _warm(plaintext: str) -> None:
    """Verify twice: the first fills the cache (and the memo), the second is a memo hit."""
    assert isinstance(caches["default"], PortalLocMemCache)
    assert api_key_verify(plaintext).valid
    assert api_key_verify(plaintext).valid
    assert len(verification._memo) == 1


def _wrong_secret(plaintext: str) -> str:
    """Return a well-formed key with the same key id and a different secret (valid checksum)."""
    body = plaintext[:-6]
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    return flipped + crc32_base62(flipped)


def test_a_hit_costs_no_query_and_no_cache_call(make_key, django_assert_num_queries, monkeypatch):
    _row, plaintext = make_key()
    _warm(plaintext)
    for name in ("get", "get_many", "get_shared", "add"):
        monkeypatch.setattr(cache, name, lambda *a, _name=name, **k: pytest.fail(f"cache.{_name} called"))
    with django_assert_num_queries(0):
        result = api_key_verify(plaintext)
    assert result.valid and result.principal().organization_slug == "acme"


def test_a_wrong_secret_with_the_right_key_id_is_refused_after_a_hit(make_key):
    row, plaintext = make_key()
    _warm(plaintext)
    wrong = _wrong_secret(plaintext)
    assert wrong != plaintext and wrong[9:21] == row.key_id
    result = api_key_verify(wrong)
    assert not result.valid and result.code == "not_found"
    assert result.wrong_secret_of is not None and result.wrong_secret_of["key_id"] == row.key_id
    # A bad checksum on the right key id and secret is malformed, as before.
    assert api_key_verify(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")).code == "malformed"
    assert api_key_verify(plaintext).valid


def test_the_memo_keeps_no_raw_key(make_key):
    _row, plaintext = make_key()
    _warm(plaintext)
    secret = plaintext[21:-6]
    assert secret not in repr(verification._memo)
    assert plaintext not in repr(verification._memo)


def test_a_revocation_is_seen_at_once_after_a_hit(make_key, owner):
    row, plaintext = make_key()
    _warm(plaintext)
    api_key_revoke(api_key=row, actor=owner, reason="leaked")
    assert api_key_verify(plaintext).code == "revoked"


def test_a_change_behind_the_services_back_is_seen_once_the_cache_entry_goes(
    make_key, django_assert_num_queries
):
    row, plaintext = make_key()
    _warm(plaintext)
    ApiKey.objects.filter(pk=row.pk).update(status="suspended", suspended_at=timezone.now())
    assert api_key_verify(plaintext).valid  # still cached: the 1 s per-process entry, as before
    cache.delete("credentials:api_key:v1:" + row.key_id)
    assert api_key_verify(plaintext).code == "revoked"


def test_the_memo_ends_with_its_cache_entry(make_key, django_assert_num_queries):
    row, plaintext = make_key()
    _warm(plaintext)
    assert cache.touch("credentials:api_key:v1:" + row.key_id, 0)  # expire the 1 s entry now
    with django_assert_num_queries(1):  # not a memo hit: the expired entry is read again
        assert api_key_verify(plaintext).valid
    cache.clear()
    with django_assert_num_queries(1):
        assert api_key_verify(plaintext).valid


def test_a_replaced_cache_entry_ends_the_memo(make_key):
    row, plaintext = make_key()
    _warm(plaintext)
    key = "credentials:api_key:v1:" + row.key_id
    snapshot = cache.get(key)
    cache.set(key, {**snapshot, "status": "revoked"}, 1)
    assert api_key_verify(plaintext).code == "revoked"


def test_a_key_past_its_expiry_is_expired_after_a_hit(make_key, monkeypatch):
    _row, plaintext = make_key(expires_at=timezone.now() + timedelta(hours=1))
    _warm(plaintext)
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=2))
    assert api_key_verify(plaintext).code == "expired"


def test_hits_are_counted_in_the_metrics(make_key):
    _row, plaintext = make_key()
    labels = {"credential_type": "api_key", "outcome": "valid"}

    def counted() -> tuple[float, float]:
        return (
            REGISTRY.get_sample_value("portal_credential_verifications_total", labels) or 0.0,
            REGISTRY.get_sample_value(
                "portal_credential_verification_seconds_count", {"credential_type": "api_key"}
            )
            or 0.0,
        )

    before = counted()
    _warm(plaintext)
    for _ in range(5):
        assert api_key_verify(plaintext).valid
    after = counted()
    assert (after[0] - before[0], after[1] - before[1]) == (7, 7)


def test_no_memo_in_front_of_a_shared_cache(redis_cache, make_key, owner):
    row, plaintext = make_key()
    assert api_key_verify(plaintext).valid
    assert api_key_verify(plaintext).valid
    assert verification._memo == {}
    api_key_revoke(api_key=row, actor=owner, reason="leaked")
    assert api_key_verify(plaintext).code == "revoked"


def test_changing_the_cache_or_peppers_forgets_the_memo(make_key, settings):
    _row, plaintext = make_key()
    _warm(plaintext)
    settings.PORTAL_PEPPERS = settings.PORTAL_PEPPERS  # any settings change
    assert verification._memo == {}
