"""The "Add trust" form is sent once: a reload, a double click or two sendings at the same moment add
one trust. A second, identical trust would keep accepting the same tokens after the one shown is
removed, a standing authorisation nobody sees (portal.submissions)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditEvent
from tests.tokens.clients.test_double_submit import _at_once, _token
from tokens.models import FederatedIdentity


def _trust_form(client, application) -> tuple[str, dict]:
    """Return the form's URL and what it sends, with the one-use token of the page it is on."""
    url = reverse("org-federated-create", kwargs={"org_slug": "acme", "app_id": application.pk})
    data = {
        "preset": "custom",
        "issuer": "https://ci.example.com",
        "subject": "repo:acme/deploy:ref:refs/heads/main",
        "conditions": "",
        "audience": "",
        "max_token_age": "900",
        "name": "deploys",
        "submission": _token(client, f"{url}?preset=custom"),
    }
    return url, data


def _trusts(application):
    return FederatedIdentity.objects.filter(application=application)


@pytest.mark.django_db
def test_the_trust_form_sent_again_shows_the_trust_it_added(owner_client, make_app):
    application = make_app().application
    url, data = _trust_form(owner_client, application)
    first = owner_client.post(url, data)
    again = owner_client.post(url, data, follow=True)
    identity = _trusts(application).get()
    detail = reverse("org-federated-detail", kwargs={"org_slug": "acme", "identity_id": identity.pk})
    assert first.status_code == 302 and first["Location"] == detail
    assert again.redirect_chain == [(detail, 302)]
    assert "That form was already sent; this is the trust it added." in again.content.decode()
    assert AuditEvent.objects.filter(action="tokens.federated_identity.created").count() == 1


@pytest.mark.django_db
def test_a_refused_trust_form_can_be_corrected_and_sent_again(owner_client, make_app):
    application = make_app().application
    url, data = _trust_form(owner_client, application)
    refused = owner_client.post(url, {**data, "issuer": "http://ci.example.com"})
    assert refused.status_code == 400 and not _trusts(application).exists()
    assert owner_client.post(url, data).status_code == 302
    assert _trusts(application).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_trust_form_sent_twice_at_once_adds_one_trust(require_postgres, owner_client, make_app):
    application = make_app().application
    url, data = _trust_form(owner_client, application)
    statuses = _at_once(owner_client, url, data)
    assert statuses == [302, 302], statuses  # the trust's page, and "already sent"
    assert _trusts(application).filter(status=FederatedIdentity.Status.ACTIVE).count() == 1
