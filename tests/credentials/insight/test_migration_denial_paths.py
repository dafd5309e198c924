"""Migration credentials 0020: paths of refused uses kept before the recorder masked them are masked."""

from __future__ import annotations

import datetime

import pytest

from tests.support.migrations import migrate_to, migrated_back_to

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("credentials", "0019_api_key_lineage_set")]
AFTER = [("credentials", "0020_usage_denial_paths_redacted")]
PASTED = "ipk_live_" + "A" * 12 + "s3cretS3cretS3cretS3cretS3cretS3cr" + "Zz0000"


def test_forwards_masks_a_key_in_a_stored_path_and_leaves_the_others():
    with migrated_back_to(BEFORE) as old_apps:
        acme = old_apps.get_model("portal", "Organization").objects.create(slug="acme", name="Acme")
        UsageDenial = old_apps.get_model("credentials", "UsageDenial")
        at = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
        common = {
            "organization": acme,
            "kind": "api_key",
            "credential_id": "X" * 12,
            "at": at,
            "outcome": "ip_denied",
        }
        pasted = UsageDenial.objects.create(endpoint=f"/api/v1/orgs/acme/api-keys/{PASTED}/", **common)
        plain = UsageDenial.objects.create(endpoint="/api/v1/whoami", **common)

        new_apps = migrate_to(AFTER)
        stored = dict(new_apps.get_model("credentials", "UsageDenial").objects.values_list("pk", "endpoint"))
        assert "s3cret" not in stored[pasted.pk] and "[redacted]" in stored[pasted.pk]
        assert stored[plain.pk] == "/api/v1/whoami"
