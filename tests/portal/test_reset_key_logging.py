"""A password-reset link's key never reaches the log: not in the access line of the link, nor of the
link without its slash (a 301), nor in the lines Django writes for a refused POST to it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.urls import reverse
from django.utils.http import base36_to_int, int_to_base36

from tests.factories import UserFactory
from tests.security.test_log_contents import console

pytestmark = pytest.mark.django_db


def _reset_link_for(user, mailoutbox) -> tuple[str, str, str]:
    """Ask for a reset link; return its path, and the user id and key it carries."""
    Client().post(reverse("account_reset_password"), {"email": user.email})
    link = re.search(r"https?://\S+/password/reset/key/\S+", mailoutbox[-1].body).group(0)
    path = link[link.index("/accounts/") :]
    uid, key = path.rstrip("/").rsplit("/", 1)[1].split("-", 1)
    return path, uid, key


def _user_whose_id_is_in_its_key():
    # A reset key starts with the time in base36: a user whose base36 id is that first character
    # makes certain what is otherwise likely, the link's user id appearing inside its key.
    first = int_to_base36(default_token_generator._num_seconds(default_token_generator._now()))[0]
    return UserFactory(pk=base36_to_int(first), email="reset-me@acme.test")


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_following_a_reset_link_logs_no_part_of_its_key(mailoutbox, fmt):
    """The path is rebuilt from the URL pattern, not masked value by value: masking the short user id
    first (inside the key too) used to leave the key unmatched, and logged with [redacted] holes."""
    path, uid, key = _reset_link_for(_user_whose_id_is_in_its_key(), mailoutbox)
    assert uid in key
    with console(fmt) as out:
        Client().get(path)
    logged = out.getvalue()
    assert "GET /accounts/password/reset/key/[redacted]-[redacted]/ 302" in logged, logged
    assert key not in logged and key.replace(uid, "[redacted]") not in logged, logged


def test_a_reset_link_without_its_slash_logs_no_key(member, mailoutbox):
    """No URL pattern matches (the 301 of APPEND_SLASH), so only the log filter can mask it."""
    path, _uid, key = _reset_link_for(member, mailoutbox)
    with console() as out:
        response = Client().get(path.rstrip("/"))
    assert response.status_code == 301
    logged = out.getvalue()
    assert "/accounts/password/reset/key/[redacted] 301" in logged, logged
    assert key not in logged, logged


def test_a_refused_post_to_a_reset_link_logs_no_key(member, mailoutbox):
    """django.security.csrf names the path of a request it refuses."""
    path, _uid, key = _reset_link_for(member, mailoutbox)
    with console() as out:
        response = Client(enforce_csrf_checks=True).post(path, {"password1": "x", "password2": "x"})
    assert response.status_code == 403
    logged = out.getvalue()
    assert "django.security.csrf" in logged and "/accounts/password/reset/key/[redacted]" in logged, logged
    assert key not in logged, logged


def test_a_reset_link_under_a_wrong_prefix_logs_no_key(member, mailoutbox):
    """django.request names the path of every 4xx it logs ("Not Found: /…"), here a link whose
    `/accounts` a proxy dropped."""
    path, _uid, key = _reset_link_for(member, mailoutbox)
    with console() as out:
        response = Client().get(path.removeprefix("/accounts"))
    assert response.status_code == 404
    logged = out.getvalue()
    assert "django.request" in logged and "Not Found: /password/reset/key/[redacted]" in logged, logged
    assert key not in logged, logged
