"""The invitation sign-up's passwords stay out of Django's error reports, as allauth's password
forms keep theirs (`sensitive_post_parameters`): the e-mail to ADMINS quoted them."""

from __future__ import annotations

import logging
import secrets

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.log import AdminEmailHandler

from portal.models import Role
from portal.services import organizations as svc

pytestmark = pytest.mark.django_db


@pytest.fixture
def error_mail(settings):
    """Send django.request's errors to ADMINS, as Django's default logging does in production."""
    settings.ADMINS = [("Ops", "ops@portal.test")]
    handler = AdminEmailHandler(include_html=True)
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)


def test_the_error_report_of_a_failed_sign_up_hides_the_passwords(
    organization, owner, monkeypatch, error_mail, mailoutbox
):
    _inv, token = svc.invitation_create(
        organization=organization, email="new@acme.test", role=Role.MEMBER, actor=owner
    )

    def broken(**kwargs):
        kwargs.clear()  # this stand-in keeps no password in its own frame
        raise RuntimeError("something broke after the form was read")

    monkeypatch.setattr(svc, "user_create_from_invitation", broken)
    secret = "pw-" + secrets.token_hex(12)  # not in this file: the report quotes its source
    response = Client(raise_request_exception=False).post(
        reverse("invitation-accept", args=[token]),
        {"full_name": "Newly Invited", "password1": secret, "password2": secret},
    )
    assert response.status_code == 500
    [mail] = mailoutbox
    [(html, _mimetype)] = mail.alternatives
    for report in (mail.body, html):
        assert "Newly Invited" in report  # the POST data is in the report…
        assert secret not in report  # …but not the passwords
