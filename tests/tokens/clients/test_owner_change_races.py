"""An application's owner change racing the removal of its current owner (PostgreSQL, real locks).

`m2m_app_update` locks the new owner's membership before the application, as every write does
(memberships, the policy row, credentials: docs/governance.md); a removal locks the owners'
memberships, then the leaver's credentials. So the two wait for each other instead of
deadlocking, and the application ends with its new owner, not orphaned.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.test import Client

from credentials.governance import ownership
from portal.models import Membership
from portal.services import organizations as org_services
from tests.support.threads import run_together
from tokens.models import M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_an_owner_change_over_rest_racing_the_old_owners_removal_gives_the_application_to_the_new_owner(
    require_postgres, monkeypatch, organization, owner, admin_user, member, make_app
):
    """PATCH /m2m-apps/<id>/ {"owner": …} while its owner is removed: both succeed, one after the
    other; the application is the new owner's, without an orphan mark."""
    app = make_app(app_owner=member, name="handed over").application
    admin = Client()
    admin.force_login(admin_user)
    locked = threading.Event()
    real_reassign = ownership.credential_reassign_owner

    def paused_reassign(*args, **kwargs):
        if threading.current_thread().name == "patch":
            locked.set()  # m2m_app_update holds the application's row lock by now
            time.sleep(1.0)
        return real_reassign(*args, **kwargs)

    monkeypatch.setattr(ownership, "credential_reassign_owner", paused_reassign)

    def patch():
        twin = Client()
        twin.cookies = admin.cookies
        return twin.patch(f"/api/v1/orgs/acme/m2m-apps/{app.pk}/", {"owner": owner.email}, "application/json")

    def remove():
        assert locked.wait(timeout=10)
        org_services.membership_remove(
            membership=Membership.objects.get(organization=organization, user=member), actor=owner
        )

    results = run_together(("patch", patch), ("remove", remove))
    assert results["remove"] is None, f"the removal was aborted: {results['remove']!r}"
    assert results["patch"].status_code == 200, results["patch"]
    app = M2MApplication.objects.get(pk=app.pk)
    assert app.owner_id == owner.pk and app.orphaned_at is None
