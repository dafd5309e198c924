"""An application has at most MAX_TRUSTS_PER_ISSUER live trusts of one issuer (docs/m2m.md).

What was wrong: the token endpoint tried only the first 20 active trusts of the application for
the token's issuer (`trust._trusts`), yet a 21st could be added. It showed active and "Test a
token" accepted its tokens, while /oauth/token answered 401 invalid_client. Now the 21st is
refused where trusts are made (dashboard and command alike), and the 20th authenticates.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from tests.support.oidc_issuer import LocalIssuer
from tests.support.threads import run_together
from tests.tokens.federation.test_federation import AUD, add_trust, present
from tokens.federation import trust
from tokens.federation.services import federated_identity_create, federated_identity_revoke
from tokens.models import FederatedIdentity, M2MApplication

pytestmark = pytest.mark.usefixtures("local_issuers")

LIMIT = trust.MAX_TRUSTS_PER_ISSUER
ISSUER = "https://ci.example.com"


def _fill(application, issuer_url: str, count: int, *, start: int = 0) -> list[FederatedIdentity]:
    return [
        add_trust(application, issuer_url, f"repo:acme/svc-{n}:ref:refs/heads/main", preset="github_actions")
        for n in range(start, start + count)
    ]


def test_the_trust_past_the_limit_is_refused_and_the_last_one_allowed_authenticates(client, app):
    with LocalIssuer() as issuer:
        identities = _fill(app.application, issuer.url, LIMIT)
        with pytest.raises(ValidationError) as refused:
            _fill(app.application, issuer.url, 1, start=LIMIT)
        assert refused.value.error_dict["issuer"][0].code == "too_many_trusts"
        assert FederatedIdentity.objects.count() == LIMIT
        # The last trust allowed works at the token endpoint, as "Test a token" says.
        token = issuer.github_actions(audience=AUD, repository=f"acme/svc-{LIMIT - 1}")
        assert trust.inspect(token, identities[-1]).passed
        response = present(client, app.client_id, token)
        assert response.status_code == 200, response.content
        assert response.json()["access_token"]


def test_a_removed_trust_makes_room_and_other_issuers_and_applications_count_apart(app, make_app):
    identities = _fill(app.application, ISSUER, LIMIT)
    # Another issuer of the same application, and the same issuer on another application: room.
    add_trust(app.application, "https://gitlab.example.com", "project_path:acme/api:ref_type:branch:ref:main")
    _fill(make_app(name="other").application, ISSUER, 1)
    federated_identity_revoke(identity=identities[0], actor=None)
    _fill(app.application, ISSUER, 1, start=LIMIT)
    with pytest.raises(ValidationError, match="already has 20 trusts of this issuer"):
        _fill(app.application, ISSUER, 1, start=LIMIT + 1)


def test_the_dashboard_shows_the_limit_on_the_issuer_field(owner_client, app):
    _fill(app.application, ISSUER, LIMIT)
    response = owner_client.post(
        reverse("org-federated-create", kwargs={"org_slug": "acme", "app_id": app.application.pk}),
        {
            "preset": "github_actions",
            "issuer": ISSUER,
            "subject": "repo:acme/one-more:ref:refs/heads/main",
            "audience": AUD,
            "max_token_age": 900,
            "conditions": "",
        },
    )
    assert response.status_code == 400
    assert "already has 20 trusts of this issuer" in response.context["form"].errors["issuer"][0]
    assert FederatedIdentity.objects.count() == LIMIT


def test_the_command_prints_the_limit_and_fails(app):
    _fill(app.application, ISSUER, LIMIT)
    with pytest.raises(CommandError, match="already has 20 trusts of this issuer"):
        call_command(
            "add_federated_identity",
            "--client-id",
            app.client_id,
            "--issuer",
            ISSUER,
            "--subject",
            "repo:acme/one-more:ref:refs/heads/main",
            stdout=StringIO(),
        )
    assert FederatedIdentity.objects.count() == LIMIT


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_trusts_added_at_once_one_below_the_limit_leave_the_limit(require_postgres, app):
    _fill(app.application, ISSUER, LIMIT - 1)

    def add(n: int):
        return lambda: federated_identity_create(
            application=M2MApplication.objects.get(pk=app.application.pk),
            actor=None,
            issuer=ISSUER,
            subject=f"repo:acme/racer-{n}:ref:refs/heads/main",
            preset="github_actions",
        )

    results = run_together(("one", add(1)), ("two", add(2)))
    refused = [r for r in results.values() if isinstance(r, ValidationError)]
    assert len(refused) == 1 and refused[0].error_dict["issuer"][0].code == "too_many_trusts", results
    assert FederatedIdentity.objects.filter(application=app.application, issuer=ISSUER).count() == LIMIT


def test_trusts_past_the_limit_from_before_it_existed_are_shown_never_tried(
    client, app, owner_client, monkeypatch
):
    """An application given more than LIMIT trusts of one issuer before creation refused them keeps
    them: the newest show "Never tried" on the application's and the trust's pages, and "Test a
    token" refuses a token they would otherwise accept, as the token endpoint does."""
    with LocalIssuer() as issuer:
        monkeypatch.setattr(trust, "MAX_TRUSTS_PER_ISSUER", LIMIT + 2)  # as it was before the limit
        identities = _fill(app.application, issuer.url, LIMIT + 2)
        monkeypatch.undo()
        last, first_tried = identities[-1], identities[LIMIT - 1]
        token = issuer.github_actions(audience=AUD, repository=f"acme/svc-{LIMIT + 1}")
        assert trust.inspect(token, last).passed
        assert present(client, app.client_id, token).status_code == 401

        page = owner_client.get(
            reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk})
        )
        html = page.content.decode()
        assert "2 trusts never tried." in html and html.count(">Never tried</span>") == 2

        def detail(identity):
            url = reverse("org-federated-detail", kwargs={"org_slug": "acme", "identity_id": identity.pk})
            return owner_client.get(url).content.decode()

        assert "Never tried" in detail(last) and "Never tried" not in detail(first_tried)
        tested = owner_client.post(
            reverse("org-federated-test", kwargs={"org_slug": "acme", "identity_id": last.pk}),
            {"token": token},
        )
        assert not tested.context["report"].passed
        assert "This token would be refused" in tested.content.decode()

        # Removing one of the oldest makes room: the newest past the limit is now tried.
        federated_identity_revoke(identity=identities[0], actor=None)
        assert "Never tried" not in detail(identities[LIMIT])
        assert (
            present(
                client, app.client_id, issuer.github_actions(audience=AUD, repository=f"acme/svc-{LIMIT}")
            ).status_code
            == 200
        )
