"""A change of the organisation's runtime rules racing a credential write (PostgreSQL, real locks).

A new or changed limit above the ceiling is refused, and a ceiling change flags every active
credential above it (docs/governance.md, "Runtime policy rules"); a rotation's successor
inherits its predecessor's flag (docs/choosing.md). Writes lock the policy row before the
credential, so whichever order the two commit in, the credential ends within the rules or
flagged against them.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from credentials import policy as runtime
from credentials.api_keys import services as api_key_services
from credentials.api_keys.models import ApiKey
from credentials.governance import edits, org_policy
from credentials.governance.org_policy import policy_for, policy_update
from portal.models import Organization
from tests.support.threads import run_together
from tokens.clients import services as m2m_services
from tokens.models import M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CEILING = {"requests": 10, "per_seconds": 1}
WITHIN = {"requests": 5, "per_seconds": 1}
ABOVE = {"requests": 1000, "per_seconds": 1}


def _set_ceiling(organization, owner, judged: threading.Event):
    def run():
        assert judged.wait(timeout=10)
        policy_update(
            organization=Organization.objects.get(pk=organization.pk), actor=owner, max_rate_limit=CEILING
        )

    return run


def _hold_after(module, name: str, thread_name: str, judged: threading.Event, monkeypatch) -> None:
    real = getattr(module, name)

    def held(*args, **kwargs):
        result = real(*args, **kwargs)
        if threading.current_thread().name == thread_name:
            judged.set()
            time.sleep(1.0)  # the policy change commits meanwhile
        return result

    monkeypatch.setattr(module, name, held)


def _consistent(credential) -> bool:
    """Within the ceiling, or flagged against the policy."""
    return (
        not runtime.exceeds(credential.rate_limit or None, CEILING)
        or credential.policy_flagged_at is not None
    )


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_a_limit_raised_while_the_ceiling_is_set_ends_flagged_or_refused(
    require_postgres, monkeypatch, kind, organization, owner, make_key, make_app
):
    policy_for(organization)
    if kind == "api_key":
        credential, _ = make_key(name="limited", rate_limit=WITHIN)
    else:
        credential = make_app(name="limited", rate_limit=WITHIN).application
    model = type(credential)
    judged = threading.Event()
    _hold_after(edits, "check_runtime_policy_change", "raise", judged, monkeypatch)

    def raise_limit():
        edits.credential_policy_set(
            credential=model.objects.get(pk=credential.pk), actor=owner, rate_limit=ABOVE
        )

    results = run_together(("raise", raise_limit), ("policy", _set_ceiling(organization, owner, judged)))
    credential = model.objects.get(pk=credential.pk)
    assert policy_for(Organization.objects.get(pk=organization.pk)).max_rate_limit == CEILING
    outcome = {name: repr(r) for name, r in results.items()}
    assert _consistent(credential), (
        f"rate limit {credential.rate_limit} is above the ceiling {CEILING} and not flagged; {outcome}"
    )


def test_an_application_created_while_the_ceiling_is_set_ends_flagged_or_refused(
    require_postgres, monkeypatch, organization, owner, scopes
):
    policy_for(organization)
    judged = threading.Event()
    _hold_after(org_policy, "runtime_policy_for_new", "create", judged, monkeypatch)

    def create():
        return m2m_services.m2m_app_create(
            organization=Organization.objects.get(pk=organization.pk),
            name="fast",
            owner=owner,
            scopes=["orders:read"],
            actor=owner,
            rate_limit=ABOVE,
        )

    results = run_together(("create", create), ("policy", _set_ceiling(organization, owner, judged)))
    outcome = {name: repr(r) for name, r in results.items()}
    for app in M2MApplication.objects.filter(name="fast"):
        assert _consistent(app), f"rate limit {app.rate_limit} above the ceiling and not flagged; {outcome}"


def test_a_key_rotated_while_live_keys_are_forbidden_leaves_its_successor_flagged(
    require_postgres, monkeypatch, organization, owner, make_key
):
    # docs/choosing.md: a change of the policy on kinds flags every working key it would no longer
    # allow, and a rotation's successor inherits the flag, whichever of the two commits first.
    policy_for(organization)
    old, _ = make_key(name="live job", environment="live")
    judged = threading.Event()
    _hold_after(api_key_services, "scope_use_carry_over", "rotate", judged, monkeypatch)

    def rotate():
        return api_key_services.api_key_rotate(
            api_key=ApiKey.objects.get(pk=old.pk), actor=owner, overlap=timedelta(hours=1)
        )[0].pk

    def forbid():
        assert judged.wait(timeout=10)
        policy_update(
            organization=Organization.objects.get(pk=organization.pk),
            actor=owner,
            new_live_api_keys="forbidden",
        )

    results = run_together(("rotate", rotate), ("policy", forbid))
    assert results["policy"] is None, results
    successor = ApiKey.objects.get(pk=results["rotate"])
    old = ApiKey.objects.get(pk=old.pk)
    assert old.policy_flagged_at is not None  # the predecessor, in its one-hour overlap, is flagged
    assert successor.status == "active" and successor.environment == "live"
    assert successor.policy_flagged_at is not None, "the working successor of a flagged key is not flagged"
