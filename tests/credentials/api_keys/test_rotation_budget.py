"""Rotating an API key keeps its rate-limit budget: a key's limit is counted by its lineage.

docs/api-keys.md: the limit is shared "by every client of the key", and "a rotated key's
successor keeps the policy"; docs/security.md: a limited credential cannot lift its limit by
rotating. An M2M application's limit is counted per client id, which a secret rotation keeps;
an API key's is counted per lineage (the key id of its chain's first key), which a rotation
keeps (`credentials.policy.api_key_budget`), on whoami, `keys/verify` and token exchange alike.
"""

from __future__ import annotations

import pytest
import redis
from django.core.cache import cache
from django.test import Client

from credentials import policy
from credentials.api_keys.services import api_key_rotate
from credentials.api_keys.verification import api_key_verify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rate_clock")]

IP = "203.0.113.7"
WHOAMI = "/api/v1/whoami"
VERIFY = "/api/v1/keys/verify"


def whoami(key: str):
    return Client().get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=IP)


def test_rotation_does_not_reset_the_rate_limit_budget(make_key, owner):
    api_key, key = make_key(rate_limit={"requests": 2, "per_seconds": 60})
    assert [whoami(key).status_code for _ in range(3)] == [200, 200, 429]
    _successor, new_key = api_key_rotate(api_key=api_key, actor=owner)
    # Same integration, same window: the budget is spent.
    assert whoami(new_key).status_code == 429


def test_a_key_cannot_lift_its_own_limit_by_rotating_itself(make_key):
    api_key, key = make_key(scopes=["api_keys:manage"], rate_limit={"requests": 3, "per_seconds": 60})
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=IP)
    assert client.get(WHOAMI).status_code == 200
    assert client.get(WHOAMI).status_code == 200
    response = client.post(
        f"/api/v1/orgs/acme/api-keys/{api_key.key_id}/rotate/",
        {"overlap_hours": 0},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content  # the third use of the budget
    new_key = response.json()["successor"]["key"]
    assert whoami(new_key).status_code == 429  # the fourth use in the window


def test_during_the_overlap_old_and_new_key_share_one_budget(make_key, owner):
    api_key, key = make_key(rate_limit={"requests": 2, "per_seconds": 60})
    _successor, new_key = api_key_rotate(api_key=api_key, actor=owner)
    statuses = [whoami(k).status_code for k in (key, new_key, key, new_key)]
    # 2 per minute for the integration, not 2 per secret.
    assert statuses == [200, 200, 429, 429]


def test_every_key_of_a_chain_shares_the_first_keys_lineage_and_no_other_key_does(make_key, owner):
    first, _ = make_key(rate_limit={"requests": 1, "per_seconds": 60})
    second, _ = api_key_rotate(api_key=first, actor=owner)
    third, third_key = api_key_rotate(api_key=second, actor=owner)
    assert first.lineage == second.lineage == third.lineage == first.key_id
    other, other_key = make_key(name="other", rate_limit={"requests": 1, "per_seconds": 60})
    assert other.lineage == other.key_id
    assert whoami(third_key).status_code == 200
    assert whoami(third_key).status_code == 429
    assert whoami(other_key).status_code == 200  # another integration: a budget of its own


def test_keys_verify_counts_a_rotated_keys_successor_on_the_same_budget(make_key, owner):
    _, verifier = make_key(name="gateway", scopes=["api_keys:verify"])
    customer, customer_key = make_key(name="customer", rate_limit={"requests": 1, "per_seconds": 60})
    client = Client(HTTP_AUTHORIZATION=f"Bearer {verifier}")
    assert client.post(VERIFY, {"key": customer_key}, "application/json").json()["valid"] is True
    _successor, new_key = api_key_rotate(api_key=customer, actor=owner)
    body = client.post(VERIFY, {"key": new_key}, "application/json").json()
    assert body["valid"] is False and body["code"] == "rate_limited"
    body = client.post(VERIFY, {"key": customer_key}, "application/json").json()
    assert body["valid"] is False and body["code"] == "rate_limited"


def test_a_snapshot_cached_before_the_lineage_existed_still_verifies_and_counts(make_key):
    """A deploy meets snapshots cached without `lineage`: they count under the key id, as before."""
    api_key, key = make_key(rate_limit={"requests": 1, "per_seconds": 60})
    snapshot = api_key_verify(key).key  # now cached
    cache_key = f"credentials:api_key:v1:{api_key.key_id}"
    old = {name: value for name, value in cache.get(cache_key).items() if name != "lineage"}
    cache.set(cache_key, old, 60)
    assert "lineage" not in api_key_verify(key).key
    assert policy.api_key_budget(old) == api_key.key_id == policy.api_key_budget(snapshot)
    assert whoami(key).status_code == 200
    assert whoami(key).status_code == 429


def test_counting_by_lineage_costs_no_query(make_key, owner, django_assert_num_queries):
    api_key, _ = make_key(rate_limit={"requests": 100, "per_seconds": 60})
    _successor, new_key = api_key_rotate(api_key=api_key, actor=owner)
    assert whoami(new_key).status_code == 200  # cold: the snapshot is read and cached
    with django_assert_num_queries(0):
        assert whoami(new_key).status_code == 200


@pytest.mark.usefixtures("redis_cache")
def test_counting_by_lineage_costs_no_redis_round_trip(make_key, owner, settings, monkeypatch):
    """A rotated key's warm request sends Redis exactly what a never-rotated key's does."""
    settings.PORTAL_API_KEY_MEMO_SECONDS = 0  # every request reads Redis: compare whole requests
    settings.PORTAL_USAGE_FLUSH_SECONDS = settings.PORTAL_USAGE_ROLLUP_SECONDS = 10**9
    limit = {"requests": 100, "per_seconds": 60}
    _, plain_key = make_key(name="never rotated", rate_limit=limit)
    rotated, _ = make_key(name="rotated", rate_limit=limit)
    _successor, successor_key = api_key_rotate(api_key=rotated, actor=owner)
    sent: list[str] = []
    original = redis.Redis.execute_command

    def spy(self, *args, **options):
        sent.append(str(args[0]))
        return original(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", spy)

    def warm_commands(key: str) -> list[str]:
        whoami(key)
        whoami(key)  # the snapshot, the last-used marker and the counter now exist
        sent.clear()
        assert whoami(key).status_code == 200
        return list(sent)

    assert warm_commands(successor_key) == warm_commands(plain_key)
