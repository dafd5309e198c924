"""Migration credentials 0017: requests an operator filed on the command line are marked `cli`,
as their audit events say; the others stay unmarked."""

from __future__ import annotations

import pytest

from tests.support.migrations import migrate_to, migrated_back_to

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("credentials", "0016_leak_policy_label")]
AFTER = [("credentials", "0017_credential_request_via")]


def test_forwards_marks_the_requests_filed_on_the_command_line():
    with migrated_back_to(BEFORE) as old_apps:
        Organization = old_apps.get_model("portal", "Organization")
        User = old_apps.get_model("portal", "User")
        AuditEvent = old_apps.get_model("portal", "AuditEvent")
        CredentialRequest = old_apps.get_model("credentials", "CredentialRequest")
        acme = Organization.objects.create(slug="acme", name="Acme")
        owner = User.objects.create(email="owner@acme.test")

        def filed(object_id: int, via: str | None) -> int:
            request = CredentialRequest.objects.create(
                organization=acme,
                kind="m2m_app",
                object_id=object_id,
                credential_label=f"app {object_id}",
                request_type="create",
                justification="moving",
                requester=owner,
            )
            extra = {"request_id": request.pk, **({"via": via} if via else {})}
            AuditEvent.objects.create(
                organization=acme, actor=owner, action="credentials.request.created", extra=extra
            )
            return request.pk

        on_cli, on_dashboard, asked = filed(1, "cli"), filed(2, "dashboard"), filed(3, None)
        new_apps = migrate_to(AFTER)
        vias = dict(new_apps.get_model("credentials", "CredentialRequest").objects.values_list("pk", "via"))
        assert vias == {on_cli: "cli", on_dashboard: "", asked: ""}
