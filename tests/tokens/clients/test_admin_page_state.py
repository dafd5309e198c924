"""The M2M application admin applies staff's change to the application as it is when saved.

What was wrong: the change page posts the whole scope list and the owner as it showed them, and the
admin handed them to `m2m_app_update` whole. Django compares them with what is stored *now*, so a
narrowing (or a new owner) made in the dashboard after staff opened the page counted as staff's
change: staff renaming the application put the removed scope back (a widening, audited as staff's)
or gave it back to its former owner. The page now carries what it showed (`scopes_shown`,
`owner_shown`): the scopes change by what staff ticked and unticked (`edits.scope_change`, as in the
dashboard), an owner left as shown stays whoever owns it now, and an owner both sides changed is
refused. A stale page that only renames asks for no step-up either.

Also: a name with a character that hides or reorders text (`invoice<U+202E>gpj.exe`) is a field
error here too (credentials.names), as on every other path.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials.governance.edits import credential_scopes_set
from credentials.governance.ownership import credential_reassign_owner
from portal.models import AuditEvent
from tests.factories import make_m2m_app
from tests.portal.test_account_security import make_stale
from tests.support.admin_forms import change_form_data, is_step_up_redirect
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


def _url(application) -> str:
    return reverse("admin:tokens_m2mapplication_change", args=[application.pk])


def _held(application) -> list[str]:
    return sorted(M2MApplication.objects.get(pk=application.pk).allowed_scopes.values_list("name", flat=True))


def _staff_scope_changes() -> int:
    return AuditEvent.objects.filter(action="tokens.m2m_app.scopes_changed", extra__via="admin").count()


@pytest.fixture
def application(organization, owner, scopes):
    application, _ = make_m2m_app(organization, owner, scopes=("orders:read", "orders:write"))
    return application


def test_renaming_keeps_a_narrowing_made_since_the_page_was_opened(super_client, owner, application):
    data = change_form_data(super_client.get(_url(application)))  # staff open the page
    credential_scopes_set(credential=application, scopes=["orders:read"], actor=owner)  # owner narrows
    data["name"] = "Billing service (renamed)"

    assert super_client.post(_url(application), data).status_code == 302

    assert M2MApplication.objects.get(pk=application.pk).name == "Billing service (renamed)"
    assert _held(application) == ["orders:read"], "the narrowed scope is back"
    assert _staff_scope_changes() == 0


def test_staffs_own_untick_is_made_to_the_scopes_as_they_are_now(super_client, owner, application, scopes):
    data = change_form_data(super_client.get(_url(application)))
    credential_scopes_set(
        credential=application, scopes=["orders:read", "orders:write", "billing:read"], actor=owner
    )
    data["allowed_scopes"] = [scopes["orders:read"].pk]  # staff untick orders:write

    assert super_client.post(_url(application), data).status_code == 302

    assert _held(application) == ["billing:read", "orders:read"]


def test_a_scope_staff_tick_is_added(super_client, application, scopes):
    data = change_form_data(super_client.get(_url(application)))
    data["allowed_scopes"] = [*data["allowed_scopes"], scopes["billing:read"].pk]

    assert super_client.post(_url(application), data).status_code == 302

    assert _held(application) == ["billing:read", "orders:read", "orders:write"]


def test_a_stale_page_that_only_renames_asks_for_no_step_up(super_client, owner, admin_user, application):
    data = change_form_data(super_client.get(_url(application)))
    credential_scopes_set(credential=application, scopes=["orders:read"], actor=owner)
    credential_reassign_owner(credential=application, owner=admin_user, actor=owner)
    make_stale(super_client)
    data["name"] = "Billing service (renamed)"

    response = super_client.post(_url(application), data)

    assert not is_step_up_redirect(response) and response.status_code == 302
    application.refresh_from_db()
    assert (application.name, application.owner) == ("Billing service (renamed)", admin_user)
    assert _held(application) == ["orders:read"]


def test_renaming_keeps_an_owner_given_since_the_page_was_opened(
    super_client, owner, admin_user, application
):
    data = change_form_data(super_client.get(_url(application)))
    credential_reassign_owner(credential=application, owner=admin_user, actor=owner)
    data["name"] = "Billing service (renamed)"

    assert super_client.post(_url(application), data).status_code == 302

    application.refresh_from_db()
    assert application.owner == admin_user, "given back to its former owner"
    assert AuditEvent.objects.filter(action="tokens.m2m_app.owner_reassigned").count() == 1


def test_an_owner_both_sides_changed_is_refused(super_client, owner, admin_user, member, application):
    data = change_form_data(super_client.get(_url(application)))
    credential_reassign_owner(credential=application, owner=admin_user, actor=owner)
    data.update(owner=member.pk, name="Billing service (renamed)")

    response = super_client.post(_url(application), data, follow=True)

    assert "The owner changed since you opened the page; reload it." in response.content.decode()
    application.refresh_from_db()
    assert (application.owner, application.name) == (admin_user, "Billing service")


def test_staffs_own_owner_change_is_made(super_client, owner, member, application):
    data = change_form_data(super_client.get(_url(application)))
    data["owner"] = member.pk

    assert super_client.post(_url(application), data).status_code == 302

    application.refresh_from_db()
    assert application.owner == member


def test_a_name_with_hiding_characters_is_a_field_error(super_client, application):
    data = change_form_data(super_client.get(_url(application)))
    data["name"] = "invoice\u202egpj.exe"

    response = super_client.post(_url(application), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors.as_data()["name"]
    assert [e.code for e in errors] == ["invalid_characters"]
    assert "U+202E" in response.content.decode()
    assert M2MApplication.objects.get(pk=application.pk).name == "Billing service"
