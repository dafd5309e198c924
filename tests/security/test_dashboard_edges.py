"""Dashboard edges: one secret per form sent (invitation links too), no pasted secret echoed,
invalid input shown on its field with what was typed kept, errors tied to what they are about."""

from __future__ import annotations

import re

from django.urls import reverse

from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent
from portal.services.organizations import invitation_create, invitation_for_token
from tokens.models import M2MApplication


def _form_data(page: str, action: str) -> dict[str, str]:
    """Return the inputs of the page's POST form to `action`, as the browser would send them."""
    match = re.search(
        r'<form method="post" action="' + re.escape(action) + r'"[^>]*>(.*?)</form>', page, re.S
    )
    assert match, f"no form posting to {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', match.group(1)))


def test_resending_the_same_invitation_resend_form_twice_keeps_the_first_link_working(
    owner_client, owner, organization, mailoutbox, django_capture_on_commit_callbacks
):
    """A double click (or a reload of the link page) of "Resend and copy link" must not kill the link
    just shown and copied: the second sending of the same form shows no new link and sends no email."""
    invitation, _ = invitation_create(
        organization=organization, email="new@acme.test", role="member", actor=owner
    )
    mailoutbox.clear()
    url = reverse("org-invitation-resend", args=[organization.slug, invitation.pk])
    data = _form_data(
        owner_client.get(reverse("org-members", args=[organization.slug])).content.decode(), url
    )

    with django_capture_on_commit_callbacks(execute=True):
        first = owner_client.post(url, data)
    link = re.search(r'<code id="invitation-link">([^<]+)</code>', first.content.decode()).group(1)
    token = link.rstrip("/").rsplit("/", 1)[1]
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url, data)  # the same form, sent again

    assert invitation_for_token(token) is not None and invitation_for_token(token).is_open
    assert AuditEvent.objects.filter(action="portal.invitation.resent").count() == 1
    assert len(mailoutbox) == 1


def test_a_whole_api_key_pasted_into_the_inventory_search_is_not_echoed_into_the_page(owner_client, make_key):
    """The API keys list keeps only the public key id of a pasted key (credentials/api_keys/views.py);
    the inventory, the one list of both kinds, echoes the secret back into the page and its links."""
    api_key, plaintext = make_key(name="billing export")

    response = owner_client.get(reverse("org-inventory", args=["acme"]), {"q": plaintext}, follow=True)

    assert response.status_code == 200
    assert plaintext not in response.content.decode()
    assert plaintext not in response.request["QUERY_STRING"]
    assert "billing export" in response.content.decode()  # found by its public id, as on the keys list


def test_runtime_policy_invalid_networks_show_field_error_and_keep_typed_values(owner_client, make_key):
    api_key, _ = make_key()
    owner_client.get(
        reverse("org-api-key-detail", args=["acme", api_key.key_id])
    )  # the session's sign-in time
    typed_ips = "10.0.0.0/8\nnot-a-network"

    response = owner_client.post(
        reverse("org-api-key-policy", args=["acme", api_key.key_id]),
        {"policy-allowed_ips": typed_ips, "policy-rate_limit": "100/60"},
    )

    # Back on the key's page, the form is shown again with the error on its field, nothing typed lost.
    assert response.status_code == 302
    html = owner_client.get(response["Location"]).content.decode()
    assert 'id="id_policy-allowed_ips_error"' in html
    assert "not-a-network" in html
    assert 'value="100/60"' in html


def test_move_page_refuses_a_name_with_a_nul_character_with_a_field_error(owner_client, make_key):
    """A NUL would reach the database: a 500 on PostgreSQL ("text fields cannot contain NUL")."""
    api_key, _ = make_key(name="billing export")

    response = owner_client.post(
        reverse("org-api-key-move", args=["acme", api_key.key_id]), {"name": "billing\x00svc"}
    )

    assert response.status_code == 400
    assert not M2MApplication.objects.filter(moved_from_key=api_key).exists()


def test_a_refused_key_request_shows_the_same_page_as_before_without_an_invented_policy_warning(
    owner_client, owner, organization, scopes
):
    """The page shown again after a refusal has the policy context too: no warning about a kind
    policy the organisation does not have ("new live API keys are allowed; …")."""
    policy_update(
        organization=organization, actor=owner, approve_new_api_keys=True, api_key_max_lifetime_days=30
    )
    url = reverse("org-api-key-create", args=["acme"])
    assert 'id="kind-policy"' not in owner_client.get(url).content.decode()

    response = owner_client.post(
        url,
        {
            "name": "nightly export",
            "owner": owner.pk,
            "scopes": ["orders:read"],
            "environment": "live",
            "expires_in_days": "60",
            "justification": "The export job needs it.",
        },
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_expires_in_days_error"' in html
    assert 'id="kind-policy"' not in html


def _create_key_with_errors(owner_client, owner, **data):
    response = owner_client.post(
        reverse("org-api-key-create", args=["acme"]),
        {"name": "job", "owner": owner.pk, "environment": "live", **data},
    )
    assert response.status_code == 400
    return response.content.decode()


def test_an_error_on_a_group_of_checkboxes_is_announced_with_the_group(owner_client, owner, scopes):
    """A fieldset's aria-describedby names its error too, so a screen reader announces it with the group."""
    html = _create_key_with_errors(owner_client, owner, scopes=["no-such-scope"])

    fieldset = re.search(r"<fieldset[^>]*>", html[html.index('id="id_scopes"') - 400 :]).group(0)
    assert 'id="id_scopes_error"' in html
    described = re.search(r'aria-describedby="([^"]*)"', fieldset)
    assert described and "id_scopes_error" in described.group(1).split(), fieldset


def test_a_field_with_two_errors_has_no_duplicate_element_ids(owner_client, owner, scopes):
    """All of a field's errors sit in one element with the id aria-describedby names."""
    html = _create_key_with_errors(owner_client, owner, name="a\x00" + "b" * 120)

    assert html.count('id="id_name_error"') == 1
