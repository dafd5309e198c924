"""Fixed-window rate limits in the cache."""

from __future__ import annotations

import pytest

from portal.infra import ratelimit
from portal.infra.ratelimit import Limit


@pytest.mark.usefixtures("rate_clock")  # its four calls share one fixed window
def test_limit_allows_then_refuses_with_retry_after():
    limit = Limit(limit=3, window=60)
    for expected in (1, 2, 3):
        assert ratelimit.retry_after("t", "client-a", limit) is None
        assert ratelimit.hit("t", "client-a", limit) == expected
    wait = ratelimit.retry_after("t", "client-a", limit)
    assert wait is not None and 1 <= wait <= 60
    # Other identities and scopes are counted apart.
    assert ratelimit.retry_after("t", "client-b", limit) is None
    assert ratelimit.retry_after("other", "client-a", limit) is None


def test_zero_limit_means_unlimited():
    limit = Limit(limit=0, window=60)
    for _ in range(5):
        ratelimit.hit("t", "x", limit)
    assert ratelimit.retry_after("t", "x", limit) is None
