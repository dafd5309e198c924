"""Federated identities in the dashboard and governance: presets, "test a token", approval, inventory."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.urls import reverse
from jwt.algorithms import RSAAlgorithm

from credentials.governance import approvals, org_policy, ownership, reviews
from credentials.governance.models import CredentialRequest
from credentials.governance.selectors import inventory_queryset, inventory_rows
from credentials.webhooks.models import WebhookDelivery
from credentials.webhooks.services import webhook_endpoint_create
from portal.models import AuditEvent
from tests.support.oidc_issuer import LocalIssuer
from tests.tokens.federation.test_federation import AUD, add_trust, assert_invalid_client, claims_of, present
from tokens.models import FederatedIdentity

pytestmark = pytest.mark.usefixtures("local_issuers")


def _create_url(app) -> str:
    return reverse("org-federated-create", kwargs={"org_slug": "acme", "app_id": app.application.pk})


def _detail_url(identity) -> str:
    return reverse("org-federated-detail", kwargs={"org_slug": "acme", "identity_id": identity.pk})


def _test_url(identity) -> str:
    return reverse("org-federated-test", kwargs={"org_slug": "acme", "identity_id": identity.pk})


def test_the_github_actions_preset_fills_in_and_explains_the_trust(owner_client, app):
    page = owner_client.get(_create_url(app) + "?preset=github_actions").content.decode()
    assert 'value="https://token.actions.githubusercontent.com"' in page
    assert "repo:ORG/REPO:ref:refs/heads/main" in page
    assert "job_workflow_ref=" in page and "id-token: write" in page
    assert f'value="{settings.PORTAL_ISSUER}"' in page  # the default audience


def test_add_a_trust_from_the_form_then_test_tokens(owner_client, client, app, issuer, caplog):
    response = owner_client.post(
        _create_url(app),
        {
            "preset": "github_actions",
            "issuer": issuer.url,
            "subject": "repo:acme/api:ref:refs/heads/main",
            "conditions": "repository=acme/api\nenvironment=\n",  # an unfilled preset line is ignored
            "audience": AUD,
            "max_token_age": 900,
        },
    )
    identity = FederatedIdentity.objects.get()
    assert response.status_code == 302 and response["Location"] == _detail_url(identity)
    assert identity.conditions == {"repository": ["acme/api"]} and identity.status == "active"
    assert identity.created_by.email == "owner@acme.test"

    app_page = owner_client.get(
        reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    )
    assert identity.name in app_page.content.decode()

    good = issuer.github_actions(audience=AUD)
    with caplog.at_level(logging.DEBUG):
        result = owner_client.post(_test_url(identity), {"token": good})
    page = result.content.decode()
    assert result.status_code == 200 and "no-store" in result["Cache-Control"]
    assert "Accepted" in page and "Fail" not in page
    assert good not in page and good.split(".")[1] not in page  # never echoed back
    assert all(good.split(".")[1][:20] not in record.getMessage() for record in caplog.records)
    assert FederatedIdentity.objects.get().last_used_at is None  # nothing was issued
    # Nothing was spent either: the same token still gets a portal token afterwards.
    assert claims_of(present(client, app.client_id, good))["fed"]["id"] == identity.public_id

    wrong = issuer.github_actions(audience="https://github.com/acme", ref="refs/heads/dev")
    page = owner_client.post(_test_url(identity), {"token": wrong}).content.decode()
    assert "Refused" in page
    assert 'data-check="audience"' in page and "aud must name" in page
    assert "does not match" in page  # the subject
    garbage = owner_client.post(_test_url(identity), {"token": "not a token"}).content.decode()
    assert "Not a signed JWT" in garbage


def test_a_bad_trust_is_a_field_error(owner_client, app):
    response = owner_client.post(
        _create_url(app),
        {
            "preset": "github_actions",
            "issuer": "https://10.0.0.1",
            "subject": "repo:*/api:ref:refs/heads/main",
            "conditions": "no-equals-sign",
            "max_token_age": 900,
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "issuer" in errors or "subject" in errors or "conditions" in errors
    assert not FederatedIdentity.objects.exists()


def test_a_member_cannot_add_a_trust_to_someone_elses_app_nor_test_its_tokens(member_client, app, issuer):
    assert member_client.get(_create_url(app) + "?preset=github_actions").status_code == 403
    identity = add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )
    assert member_client.post(_test_url(identity), {"token": "x.y.z"}).status_code == 403
    assert (
        member_client.get(_detail_url(identity)).status_code == 200
    )  # members see the inventory's credentials


def test_another_organisation_sees_404(outsider_client, app, issuer):
    identity = add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )
    assert outsider_client.get(_detail_url(identity)).status_code == 404
    assert outsider_client.post(_test_url(identity), {"token": "x.y.z"}).status_code == 404


def test_removing_a_trust_from_the_dashboard(owner_client, client, app, issuer):
    identity = add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )
    response = owner_client.post(
        reverse("org-federated-revoke", kwargs={"org_slug": "acme", "identity_id": identity.pk})
    )
    assert response.status_code == 302
    identity.refresh_from_db()
    assert identity.status == "revoked"
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))


# --- governance --------------------------------------------------------------------------------


def test_approval_is_required_when_the_policy_says_so(
    owner, admin_user, member, app, issuer, client, django_capture_on_commit_callbacks
):
    from credentials.governance.models import OrganizationPolicy  # noqa: F401 - the policy row

    org_policy.policy_update(
        organization=app.application.organization, actor=owner, approve_new_m2m_apps=True
    )
    with pytest.raises(Exception, match="Say why"):
        add_trust(app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", actor=owner)
    identity = add_trust(
        app.application,
        issuer.url,
        "repo:acme/api:ref:refs/heads/main",
        actor=owner,
        preset="github_actions",
        justification="deploys from CI",
    )
    assert identity.status == "pending"
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))
    request = CredentialRequest.objects.get(kind="federated_id", object_id=identity.pk)
    with pytest.raises(Exception, match="own request"):
        approvals.credential_request_approve(request=request, actor=owner)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.credential_request_approve(request=request, actor=admin_user)
    from django.core import mail

    approved = [m for m in mail.outbox if "Request approved" in m.subject]
    assert approved and "activate it from its page" in approved[-1].body
    identity.refresh_from_db()
    assert identity.status == "pending"  # approved; its owner activates it
    with pytest.raises(Exception, match="owner"):
        approvals.credential_secret_issue(credential=identity, actor=admin_user)
    approvals.credential_secret_issue(credential=identity, actor=owner)
    identity.refresh_from_db()
    assert identity.status == "active" and identity.review_due_at is not None
    assert claims_of(present(client, app.client_id, issuer.github_actions(audience=AUD)))


def test_the_inventory_lists_trusts_as_federated_credentials(owner, app, issuer):
    identity = add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )
    organization = app.application.organization
    values = list(inventory_queryset(organization))
    rows = {row.kind: row for row in inventory_rows(values, org_slug="acme")}
    assert set(rows) == {"m2m_app", "federated_id"}
    row = rows["federated_id"]
    assert row.lifecycle == "federated" and row.ref == identity.public_id and row.owner_email == owner.email
    assert row.scopes == ["orders:read", "orders:write"]  # what its tokens carry: the application's
    assert row.path == _detail_url(identity)
    from credentials.governance.selectors import InventoryFilters

    only = list(inventory_queryset(organization, InventoryFilters(kind="federated_id")))
    assert [v["row_ref"] for v in only] == [identity.public_id]


def test_the_inventory_api_and_page_show_the_trust(owner_client, app, issuer):
    identity = add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )
    body = owner_client.get("/api/v1/orgs/acme/inventory/?kind=federated_id").json()
    results = body["results"] if isinstance(body, dict) else body
    assert [r["id"] for r in results] == [identity.public_id]
    assert results[0]["lifecycle"] == "federated"
    page = owner_client.get(reverse("org-inventory", kwargs={"org_slug": "acme"})).content.decode()
    assert identity.public_id in page


def test_review_and_owner_reassignment_go_through_governance(owner, admin_user, app, issuer):
    identity = add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )
    reviews.credential_recertify(credential=identity, actor=owner)
    ownership.credential_reassign_owner(credential=identity, owner=admin_user, actor=owner)
    identity.refresh_from_db()
    assert identity.owner == admin_user and identity.last_reviewed_by == owner
    actions = set(AuditEvent.objects.filter(target_id=str(identity.pk)).values_list("action", flat=True))
    assert {"tokens.federated_identity.recertified", "tokens.federated_identity.owner_reassigned"} <= actions


def test_lifecycle_webhook_events_are_sent_for_trusts(owner, superuser, app, issuer):
    webhook_endpoint_create(
        organization=app.application.organization,
        url="https://hooks.acme.example/portal",
        event_types=["created", "suspended", "revoked"],
        actor=owner,
    )
    identity = add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )
    reviews.credential_suspend(credential=identity, actor=None, reason="manual")
    # Staff lift a manual suspension (the admin's restore action).
    reviews.credential_restore(credential=identity, actor=superuser, as_staff=True)
    reviews.credential_revoke(credential=identity, actor=owner, reason="done")
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert [d.event_type for d in deliveries] == [
        "credential.created",
        "credential.suspended",
        "credential.revoked",
    ]
    payload = deliveries[0].payload
    assert json.dumps(payload).count(identity.public_id) >= 1
    assert payload["data"]["credential"]["kind"] == "federated_id"


def _trust_form(**values):
    form = {"preset": "custom", "issuer": "https://issuer.example.com", "subject": "svc:deploy"}
    form.update({"audience": "", "max_token_age": "900", "conditions": "", "jwks": "", "name": ""})
    return {**form, **values}


@pytest.mark.django_db
def test_a_condition_value_ending_in_equals_is_a_condition(owner_client, make_app):
    # Only a preset's empty `NAME=` line is no condition; base64 padding is part of a value, and
    # dropping that line would make the trust accept any value of the claim.
    app = make_app()
    url = reverse("org-federated-create", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    response = owner_client.post(url, _trust_form(conditions="tenant=c2VjcmV0IHRlbmFudA==\nenvironment="))
    assert response.status_code == 302, response.content.decode()[:500]
    identity = FederatedIdentity.objects.get(application=app.application)
    assert identity.conditions == {"tenant": ["c2VjcmV0IHRlbmFudA=="]}


@pytest.mark.django_db
def test_the_test_page_never_echoes_a_token_even_when_the_form_is_invalid(owner_client, make_app):
    app = make_app()
    with LocalIssuer() as issuer:
        identity = add_trust(app.application, issuer.url, "repo:acme/x:ref:refs/heads/main")
        token = issuer.token({"sub": "repo:acme/x:ref:refs/heads/main", "aud": identity.audience})
        url = reverse("org-federated-test", kwargs={"org_slug": "acme", "identity_id": identity.pk})
        response = owner_client.post(url, {"token": token + "\x00"})  # invalid: a NUL
    page = response.content.decode()
    assert response.status_code == 200 and "Null characters are not allowed" in page
    assert token not in page and token.split(".")[1] not in page


@pytest.mark.django_db
def test_a_pasted_private_jwk_is_never_echoed_back(owner_client, make_app):
    private = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    app = make_app()
    url = reverse("org-federated-create", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    spiffe = {"preset": "spiffe", "issuer": "spiffe://example.org"}
    subject = "spiffe://example.org/ns/prod/sa/deployer"
    response = owner_client.post(
        url, _trust_form(**spiffe, subject=subject, jwks=json.dumps({"keys": [private]}))
    )
    assert response.status_code == 400  # refused: no public key in it
    page = response.content.decode()
    assert private["d"] not in page and private["p"] not in page
