"""Dashboard pages: list, create with a one-time reveal, detail, rotate and revoke."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke, api_key_rotate
from credentials.api_keys.verification import api_key_verify
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"ipk_(?:live|test)_[0-9A-Za-z]{50}")


def _form_token(response) -> str:
    return re.search(r'name="submission" value="([^"]+)"', response.content.decode()).group(1)


def test_sidenav_and_org_home_show_api_keys(owner_client, make_key):
    make_key()
    revoked, _ = make_key(name="old")
    api_key_revoke(api_key=revoked, actor=revoked.owner, reason="x")
    response = owner_client.get(reverse("org-home", args=["acme"]))
    html = response.content.decode()
    assert reverse("org-api-keys", args=["acme"]) in html
    assert re.search(r'card-figure">1</span>\s*<span class="card-label">active API key<', html)


def test_create_reveals_the_key_once(owner_client, owner, scopes):
    create_url = reverse("org-api-key-create", args=["acme"])
    form_page = owner_client.get(create_url)
    assert form_page.status_code == 200
    token = _form_token(form_page)
    data = {
        "submission": token,
        "name": "billing export",
        "owner": owner.pk,
        "scopes": ["orders:read"],
        "environment": "live",
        "expires_in_days": "90",
    }
    response = owner_client.post(create_url, data)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    plaintext = KEY_RE.search(html).group(0)
    assert api_key_verify(plaintext).valid
    assert 'data-copy-target="api-key-secret"' in html and "shown only on this page" in html
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["orders:read"] and api_key.expires_at > timezone.now() + timedelta(days=89)

    # Reloading (re-posting the same form) issues no second key and shows no secret.
    again = owner_client.post(create_url, data, follow=True)
    assert ApiKey.objects.count() == 1
    assert plaintext not in again.content.decode() and not KEY_RE.search(again.content.decode())
    assert "cannot be shown again" in again.content.decode()
    detail = owner_client.get(reverse("org-api-key-detail", args=["acme", api_key.key_id]))
    assert plaintext not in detail.content.decode()
    assert "credentials.api_key.created" in detail.content.decode()
    assert plaintext not in str(dict(owner_client.session))


def test_create_form_errors(owner_client, scopes):
    create_url = reverse("org-api-key-create", args=["acme"])
    response = owner_client.post(create_url, {"submission": "t", "name": "", "environment": "live"})
    assert response.status_code == 400
    assert "field-error" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_member_can_only_create_keys_for_themselves(member_client, member, owner, scopes):
    create_url = reverse("org-api-key-create", args=["acme"])
    page = member_client.get(create_url).content.decode()
    assert owner.email not in page
    response = member_client.post(
        create_url, {"submission": "t1", "name": "x", "owner": owner.pk, "environment": "live"}
    )
    assert response.status_code == 400 and not ApiKey.objects.exists()


def test_list_shows_keys_with_filters(owner_client, make_key, member):
    make_key(name="alpha job")
    make_key(name="beta job", owner=member, environment="test")
    revoked, _ = make_key(name="gamma job")
    api_key_revoke(api_key=revoked, actor=revoked.owner, reason="x")
    list_url = reverse("org-api-keys", args=["acme"])
    html = owner_client.get(list_url).content.decode()
    assert "alpha job" in html and "beta job" in html and "gamma job" in html
    assert f"{revoked.display_prefix}…{revoked.last4}" in html
    assert "never" in html  # last used / expires
    html = owner_client.get(list_url + "?q=alpha").content.decode()
    assert "alpha job" in html and "beta job" not in html
    html = owner_client.get(list_url + "?status=revoked").content.decode()
    assert "gamma job" in html and "alpha job" not in html
    html = owner_client.get(list_url + f"?environment=test&owner={member.pk}").content.decode()
    assert "beta job" in html and "alpha job" not in html


def test_last_used_is_shown_relative_with_exact_time(owner_client, make_key):
    api_key, _ = make_key()
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now() - timedelta(days=3))
    html = owner_client.get(reverse("org-api-keys", args=["acme"])).content.decode()
    assert re.search(
        r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">3\xa0days ago</time>', html
    )


def test_list_paginates(owner_client, make_key):
    for i in range(27):
        make_key(name=f"key {i:02d}")
    html = owner_client.get(reverse("org-api-keys", args=["acme"])).content.decode()
    assert "Page 1 of 2" in html
    html = owner_client.get(reverse("org-api-keys", args=["acme"]) + "?page=2").content.decode()
    assert "key 00" in html and "key 26" not in html


@pytest.mark.parametrize("count", [1, 40])
def test_list_page_query_count_is_constant(
    count, owner_client, make_key, member, django_assert_max_num_queries
):
    for i in range(count):
        key, _ = make_key(name=f"k{i}", owner=member if i % 2 else member)
        if i % 3 == 0:
            api_key_rotate(api_key=key, actor=member, overlap=timedelta(hours=1))
    with django_assert_max_num_queries(8):
        response = owner_client.get(reverse("org-api-keys", args=["acme"]))
    assert response.status_code == 200


def test_rotate_reveals_successor_and_shows_chain(owner_client, make_key):
    old, old_plain = make_key(name="deploy")
    rotate_url = reverse("org-api-key-rotate", args=["acme", old.key_id])
    page = owner_client.get(rotate_url)
    assert "data-confirm" in page.content.decode()
    token = _form_token(page)
    response = owner_client.post(rotate_url, {"submission": token, "overlap_hours": "72"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_plain = KEY_RE.search(response.content.decode()).group(0)
    assert new_plain != old_plain and "keeps working until" in response.content.decode()
    assert api_key_verify(old_plain).valid and api_key_verify(new_plain).valid
    old.refresh_from_db()
    assert timedelta(hours=71) < old.expires_at - timezone.now() <= timedelta(hours=72)
    # Reload: no second successor, no secret.
    again = owner_client.post(rotate_url, {"submission": token, "overlap_hours": "72"}, follow=True)
    assert not KEY_RE.search(again.content.decode())
    assert ApiKey.objects.count() == 2
    # A fresh rotation of the same key is refused with a message.
    refused = owner_client.post(rotate_url, {"submission": "another", "overlap_hours": "24"})
    assert refused.status_code == 400 and "already rotated" in refused.content.decode()
    successor = ApiKey.objects.get(replaces=old)
    detail = owner_client.get(reverse("org-api-key-detail", args=["acme", successor.key_id])).content.decode()
    assert f"{old.display_prefix}…{old.last4}" in detail and "(this key)" in detail
    old_detail = owner_client.get(reverse("org-api-key-detail", args=["acme", old.key_id])).content.decode()
    assert "credentials.api_key.rotated" in old_detail
    # The old key says in words that it was rotated and until when it still works.
    works_until = ApiKey.objects.get(pk=old.pk).expires_at
    assert 'Rotated</span> <span class="status-note">works until' in old_detail
    assert f"{works_until:%Y-%m-%d %H:%M} UTC" in old_detail


def test_successor_history_starts_with_the_rotation_that_issued_it(owner_client, make_key):
    old, _ = make_key(name="deploy bot")
    successor, _ = api_key_rotate(api_key=old, actor=old.owner, overlap=timedelta(hours=1))
    unrelated, _ = make_key(name="other")
    api_key_rotate(api_key=unrelated, actor=unrelated.owner, overlap=timedelta(hours=1))
    html = owner_client.get(reverse("org-api-key-detail", args=["acme", successor.key_id])).content.decode()
    assert "No events recorded" not in html
    assert html.count("credentials.api_key.rotated") == 1
    assert f"successor key ID: {successor.key_id}" in html
    # The old key's own creation stays on the old key's page.
    assert "credentials.api_key.created" not in html


def test_revoke_needs_a_reason_and_confirmation(owner_client, make_key):
    api_key, plaintext = make_key()
    revoke_url = reverse("org-api-key-revoke", args=["acme", api_key.key_id])
    page = owner_client.get(revoke_url).content.decode()
    assert "btn-danger" in page and "data-confirm" in page
    assert owner_client.post(revoke_url, {"reason": ""}).status_code == 400
    response = owner_client.post(revoke_url, {"reason": "leaked in CI log"})
    assert response.status_code == 302
    assert api_key_verify(plaintext).code == "revoked"
    event = AuditEvent.objects.get(action="credentials.api_key.revoked")
    assert event.extra["reason"] == "leaked in CI log"
    detail = owner_client.get(reverse("org-api-key-detail", args=["acme", api_key.key_id])).content.decode()
    assert "leaked in CI log" in detail and "badge-revoked" in detail


def test_member_cannot_revoke_someone_elses_key(member_client, make_key):
    api_key, _ = make_key()
    response = member_client.post(
        reverse("org-api-key-revoke", args=["acme", api_key.key_id]), {"reason": "x"}
    )
    assert response.status_code == 403
    api_key.refresh_from_db()
    assert api_key.status == "active"


def test_another_organisations_key_is_404(owner_client, make_key, other_organization, outsider):
    theirs, _ = make_key(organization=other_organization, owner=outsider)
    for name in ("org-api-key-detail", "org-api-key-rotate", "org-api-key-revoke"):
        assert owner_client.get(reverse(name, args=["acme", theirs.key_id])).status_code == 404
        assert owner_client.get(reverse(name, args=["globex", theirs.key_id])).status_code == 404


def test_a_key_pasted_into_search_is_replaced_by_its_key_id(owner_client, make_key):
    api_key, plaintext = make_key(name="pasted")
    list_url = reverse("org-api-keys", args=["acme"])
    response = owner_client.get(list_url, {"q": plaintext})
    assert response.status_code == 302 and plaintext not in response["Location"]
    assert api_key.key_id in response["Location"]
    html = owner_client.get(response["Location"]).content.decode()
    assert "pasted" in html and plaintext not in html


@pytest.mark.parametrize("pasted", ["{key} ", " {key}", "{key}\n"])
def test_a_key_pasted_with_surrounding_space_is_replaced_by_its_key_id(owner_client, make_key, pasted):
    # A terminal selection or a copied line brings a space or a newline along; the inventory strips it too.
    api_key, plaintext = make_key(name="pasted")
    response = owner_client.get(reverse("org-api-keys", args=["acme"]), {"q": pasted.format(key=plaintext)})
    assert response.status_code == 302, "the API keys list kept the pasted secret in its URL"
    assert plaintext not in response["Location"] and api_key.key_id in response["Location"]
    assert plaintext not in owner_client.get(response["Location"]).content.decode()
