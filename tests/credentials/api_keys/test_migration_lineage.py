"""Migrations credentials 0018 and 0019: every existing key gets the key id of its rotation chain's first key,
found by walking `replaces` back, so a chain rotated before the deploy shares one rate-limit budget."""

from __future__ import annotations

import pytest

from tests.support.migrations import migrate_to, migrated_back_to

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("credentials", "0017_credential_request_via")]
AFTER = [("credentials", "0019_api_key_lineage_set")]


def test_forwards_gives_each_chain_its_first_keys_id():
    with migrated_back_to(BEFORE) as old_apps:
        Organization = old_apps.get_model("portal", "Organization")
        ApiKey = old_apps.get_model("credentials", "ApiKey")
        acme = Organization.objects.create(slug="acme", name="Acme")

        def key(key_id: str, replaces=None):
            return ApiKey.objects.create(
                organization=acme, name=key_id, key_id=key_id, digest="0" * 64, replaces=replaces
            )

        # Created out of chain order: the walk must not depend on ids or creation order.
        third = key("CCCCCCCCCCCC")
        first = key("AAAAAAAAAAAA")
        second = key("BBBBBBBBBBBB", replaces=first)
        ApiKey.objects.filter(pk=third.pk).update(replaces=second)
        alone = key("LLLLLLLLLLLL")
        other_first = key("XXXXXXXXXXXX")
        other_second = key("YYYYYYYYYYYY", replaces=other_first)

        new_apps = migrate_to(AFTER)
        lineage = dict(new_apps.get_model("credentials", "ApiKey").objects.values_list("key_id", "lineage"))
        assert lineage == {
            first.key_id: first.key_id,
            second.key_id: first.key_id,
            third.key_id: first.key_id,
            alone.key_id: alone.key_id,
            other_first.key_id: other_first.key_id,
            other_second.key_id: other_first.key_id,
        }
