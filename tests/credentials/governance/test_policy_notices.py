"""Each different runtime policy that flags a credential tells its owner (the notice period is the
flag's time: a truncated period made two ceilings look the same)."""

from __future__ import annotations

import json

import pytest

from credentials.governance.models import Notice

pytestmark = pytest.mark.django_db

URL = "/api/v1/orgs/acme/policy/runtime/"


def _set(client, **rules):
    response = client.patch(URL, json.dumps(rules), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_different_ceiling_that_flags_a_credential_again_tells_its_owner_again(owner_client, make_app):
    make_app()  # no rate limit: above any ceiling
    assert _set(owner_client, max_rate_limit={"requests": 100, "per_seconds": 60})["flagged_credentials"] == 1
    assert Notice.objects.filter(notice_type="against_policy").count() == 1
    assert _set(owner_client, max_rate_limit=None)["flagged_credentials"] == 0  # allowed again: flag cleared
    # A new, different ceiling flags it again: its owner must hear about this policy too.
    assert (
        _set(owner_client, max_rate_limit={"requests": 100, "per_seconds": 3600})["flagged_credentials"] == 1
    )
    periods = list(Notice.objects.filter(notice_type="against_policy").values_list("period", flat=True))
    assert len(periods) == 2, periods
