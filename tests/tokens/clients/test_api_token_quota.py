"""The token issuance quota over the M2M applications REST API: `token_quota` on create, show and PATCH."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent
from tests.tokens.clients.test_api import create, token_status, url

pytestmark = pytest.mark.django_db

NONE = {"per_hour": None, "per_day": None, "mode": "enforce"}


@pytest.mark.usefixtures("rate_clock")
def test_quota_is_created_shown_and_enforced(owner_client, scopes):
    response = create(owner_client, token_quota={"per_hour": 2, "per_day": 100})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token_quota"] == {"per_hour": 2, "per_day": 100, "mode": "enforce"}
    assert owner_client.get(url(body["id"])).json()["token_quota"] == body["token_quota"]
    statuses = [token_status(body["client_id"], body["client_secret"]) for _ in range(3)]
    assert statuses == [200, 200, 429]
    created = AuditEvent.objects.get(action="tokens.m2m_app.created", target_id=str(body["id"]))
    assert created.extra["token_quota"] == body["token_quota"]

    plain = create(owner_client, name="Plain").json()
    assert plain["token_quota"] == NONE


@pytest.mark.usefixtures("rate_clock")
def test_patch_changes_the_quota_audited_keeping_what_it_leaves_out(owner_client, scopes):
    body = create(owner_client, token_quota={"per_hour": 1}).json()
    assert [token_status(body["client_id"], body["client_secret"]) for _ in range(2)] == [200, 429]

    response = owner_client.patch(url(body["id"]), {"token_quota": {"mode": "log_only"}}, "application/json")
    assert response.status_code == 200, response.content
    assert response.json()["token_quota"] == {"per_hour": 1, "per_day": None, "mode": "log_only"}
    assert token_status(body["client_id"], body["client_secret"]) == 200  # over quota, issued anyway
    event = AuditEvent.objects.get(action="tokens.m2m_app.policy_changed", target_id=str(body["id"]))
    assert event.extra["token_quota"]["from"]["mode"] == "enforce"
    assert event.extra["token_quota"]["to"]["mode"] == "log_only"

    response = owner_client.patch(url(body["id"]), {"token_quota": None}, "application/json")
    assert response.status_code == 200 and response.json()["token_quota"] == NONE
    # The same again changes nothing and writes no second event.
    owner_client.patch(url(body["id"]), {"token_quota": None}, "application/json")
    assert (
        AuditEvent.objects.filter(action="tokens.m2m_app.policy_changed", target_id=str(body["id"])).count()
        == 2
    )


@pytest.mark.parametrize(
    "value",
    [
        {"per_hour": 0},
        {"per_hour": -5},
        {"per_day": 1.5},
        {"per_day": "10"},
        {"per_day": True},
        {"per_hour": 10**12},
        {"per_hour": 10, "per_day": 5},  # the hourly quota may not exceed the daily one
        {"mode": "block"},
        {"per_minute": 5},
        [1, 2],
        "100/hour",
    ],
)
def test_bad_quota_is_a_field_error_on_create_and_patch(owner_client, scopes, value):
    response = create(owner_client, token_quota=value)
    assert response.status_code == 400 and "token_quota" in response.json(), response.content
    app_id = create(owner_client, name="Other").json()["id"]
    response = owner_client.patch(url(app_id), {"token_quota": value}, "application/json")
    assert response.status_code == 400 and "token_quota" in response.json(), response.content


@pytest.mark.parametrize(
    ("value", "messages"),
    [
        ({"per_hour": 0}, ["per_hour must be a whole number from 1 to 100000000, or null for no quota."]),
        (
            {"per_hour": 10, "per_day": 5},
            ["per_hour may not be more than per_day (the daily quota would always bind first)."],
        ),
        (
            {"per_hour": 0, "per_day": True, "mode": "block"},
            [
                "per_hour must be a whole number from 1 to 100000000, or null for no quota.",
                "per_day must be a whole number from 1 to 100000000, or null for no quota.",
                'mode must be "enforce" or "log_only".',
            ],
        ),
    ],
)
def test_a_refused_quota_names_the_json_keys(owner_client, scopes, value, messages):
    # The dashboard names its fields ("Tokens per hour must be …"); the REST answer keeps the keys it is sent.
    assert create(owner_client, token_quota=value).json() == {"token_quota": messages}
    app_id = create(owner_client, name="Other").json()["id"]
    assert owner_client.patch(url(app_id), {"token_quota": value}, "application/json").json() == {
        "token_quota": messages
    }


def test_a_patch_that_makes_the_hour_exceed_the_day_is_refused(owner_client, scopes):
    app_id = create(owner_client, token_quota={"per_hour": 10, "per_day": 50}).json()["id"]
    response = owner_client.patch(url(app_id), {"token_quota": {"per_day": 5}}, "application/json")
    assert response.status_code == 400 and "token_quota" in response.json(), response.content


def test_a_member_cannot_change_the_quota_of_someone_elses_application(owner_client, member_client, scopes):
    app_id = create(owner_client).json()["id"]
    response = member_client.patch(url(app_id), {"token_quota": None}, "application/json")
    assert response.status_code in (403, 404)


def test_a_stale_session_must_step_up_to_change_the_quota(settings, owner_client, scopes):
    app_id = create(owner_client).json()["id"]
    settings.PORTAL_STEP_UP_SECONDS = 0
    response = owner_client.patch(url(app_id), {"token_quota": {"per_day": 5}}, "application/json")
    assert response.status_code == 403 and response.json()["code"] == "step_up_required"
    # Sending back the application as it was read changes no policy and asks for no sign-in.
    read = owner_client.get(url(app_id)).json()
    unchanged = {name: read[name] for name in ("name", "allowed_ips", "rate_limit", "token_quota")}
    response = owner_client.patch(url(app_id), unchanged, "application/json")
    assert response.status_code == 200, response.content
