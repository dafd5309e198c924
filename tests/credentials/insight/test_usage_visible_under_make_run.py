"""BRIEF: usage is "visible within 60 s under `make run`" (DEBUG, runserver, no rollup_usage cron).

What was wrong: under DEBUG the in-process roll-up ran on `request_finished` only, after the answer
was built, so the first usage request made once a roll-up was due answered without the uses it
should show; with no other traffic a use stayed invisible however long one waited. The pages and
the usage API now roll up first when one is due (`usage.rollup_before_reading`). No timing: the
roll-up clock is set, as `_flush_if_due` reads it.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from credentials import usage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_usage_counters")]


def test_a_use_older_than_the_rollup_interval_shows_on_the_next_usage_request(
    owner_client, make_key, settings
):
    settings.DEBUG = True
    settings.PORTAL_USAGE_FLUSH_SECONDS = 5
    settings.PORTAL_USAGE_ROLLUP_SECONDS = 30
    api_key, key = make_key()
    usage._last_rollup[0] = time.monotonic()  # the server rolled up a moment ago (an earlier request)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/whoami").status_code == 200
    # 61 s pass with no request (the idle timer only flushes to the cache; it never rolls up).
    usage._last_rollup[0] = time.monotonic() - 61
    response = owner_client.get(
        "/api/v1/orgs/acme/usage/?" + urlencode({"credential": api_key.key_id, "granularity": "minute"})
    )
    assert response.status_code == 200
    assert response.json()["credentials"][0]["totals"]["valid"] == 1, response.json()


def test_the_credential_page_shows_a_use_older_than_the_rollup_interval(owner_client, make_key, settings):
    settings.DEBUG = True
    settings.PORTAL_USAGE_FLUSH_SECONDS = 5
    settings.PORTAL_USAGE_ROLLUP_SECONDS = 30
    api_key, key = make_key()
    usage._last_rollup[0] = time.monotonic()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/whoami").status_code == 200
    usage._last_rollup[0] = time.monotonic() - 61
    html = owner_client.get(reverse("org-api-key-detail", args=["acme", api_key.key_id])).content.decode()
    assert "No recorded use in the last 24 hours" not in html
