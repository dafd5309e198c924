"""docs/operations.md "Rotating the pepper", step 3: the queries count every credential that can
still come back to life under the old pepper.

The API-key query counted `status = 'active'` only. A suspended key keeps its digest and can be
restored (`credential_restore`); the operator saw no row for pepper 1, removed it in step 4, and
the key, once restored, never verified again.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client

from credentials.governance.models import SuspensionReason
from credentials.governance.reviews import credential_restore, credential_suspend
from tests.factories import make_api_key, make_m2m_app
from tests.portal.operations_doc import section

pytestmark = pytest.mark.django_db

NEW_PEPPER_ONLY = "2:N3wPepp3r-for-step-4-0123456789abcdefXYZ"


def _counts(table: str) -> dict[str, int]:
    """Run the runbook's step-3 query for `table`, as written; return the count per pepper id."""
    block = re.search(r"```sql\n(.*?)```", section("Rotating the pepper"), re.S).group(1)
    query = next(q.strip() for q in block.split(";") if f"FROM {table} " in q)
    with connection.cursor() as cursor:
        cursor.execute(query)
        return dict(cursor.fetchall())


def _whoami(plaintext: str) -> int:
    return Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code


def test_step_3_counts_a_suspended_key_that_can_be_restored(organization, owner, scopes, settings):
    key, plaintext = make_api_key(organization, owner)
    credential_suspend(credential=key, actor=None, reason=SuspensionReason.REVIEW_OVERDUE)
    assert key.pepper_id == "1"

    counts = _counts("credentials_apikey")

    # What trusting the query would do: restore the key after pepper 1 is gone.
    credential_restore(credential=key, actor=None)
    assert _whoami(plaintext) == 200
    settings.PORTAL_PEPPERS = NEW_PEPPER_ONLY
    assert _whoami(plaintext) == 401
    assert counts.get("1", 0) == 1, f"step 3 shows {counts!r}: the suspended key under pepper 1 is missing"


def test_step_3_counts_the_secret_of_a_suspended_application(organization, owner, scopes):
    app, _secret = make_m2m_app(organization, owner)
    credential_suspend(credential=app, actor=None, reason=SuspensionReason.REVIEW_OVERDUE)

    assert _counts("tokens_clientsecret").get("1", 0) == 1
