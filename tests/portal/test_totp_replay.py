"""Authenticator-app codes work while Redis is down, and each time step is accepted once.

What was wrong: allauth marks a TOTP code used with `cache.add`, which ResilientRedisCache answers
with False while Redis is down, so every right code was refused ("Incorrect code.", audited as a
failed second factor) although docs/operations.md says sign-in keeps working without Redis. The
portal now records the last accepted time step in the authenticator's row and refuses a code whose
time step is not newer (RFC 6238 section 5.2), the same with Redis up or down.
"""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import reverse

from portal.account_security.adapters import MFA_CIPHER
from portal.models import AuditEvent
from tests.factories import enrol_totp
from tests.portal.test_account_security import make_stale, password_step, signed_in, totp_code
from tests.portal.test_sign_in_redis_down import DEAD_REDIS

pytestmark = pytest.mark.django_db


def _second_factor(client: Client, user, code: str) -> bool:
    password_step(client, user.email)
    client.post(reverse("mfa_authenticate"), {"code": code})
    return signed_in(client)


@pytest.fixture(params=["redis-down", "redis-up"])
def cache_state(request, settings):
    if request.param == "redis-down":
        settings.CACHES = DEAD_REDIS
    else:
        request.getfixturevalue("redis_cache")
    return request.param


def test_the_authenticator_app_still_signs_in_while_redis_is_down(owner, settings):
    secret = enrol_totp(owner)
    settings.CACHES = DEAD_REDIS
    assert _second_factor(Client(), owner, totp_code(secret))
    assert not AuditEvent.objects.filter(action="portal.account.mfa_failed").exists()


def test_a_code_signs_in_once(owner, cache_state):
    secret = enrol_totp(owner)
    code = totp_code(secret)
    assert _second_factor(Client(), owner, code)
    assert not _second_factor(Client(), owner, code)
    assert AuditEvent.objects.filter(action="portal.account.mfa_failed").count() == 1


def test_a_code_older_than_the_last_accepted_one_is_refused(owner, settings, cache_state):
    settings.MFA_TOTP_TOLERANCE = 1  # the previous, current and next time steps are all right codes
    secret = enrol_totp(owner)
    assert _second_factor(Client(), owner, totp_code(secret, at=time.time() + 30))
    assert not _second_factor(Client(), owner, totp_code(secret))
    assert not _second_factor(Client(), owner, totp_code(secret, at=time.time() - 30))


def test_step_up_with_a_code_works_while_redis_is_down_and_spends_its_time_step(owner, settings):
    settings.MFA_TOTP_TOLERANCE = 1
    secret = enrol_totp(owner)
    settings.CACHES = DEAD_REDIS
    client = Client()
    assert _second_factor(client, owner, totp_code(secret, at=time.time() - 30))
    make_stale(client)
    url = reverse("org-api-key-create", args=["acme"])
    step_up = client.get(url)["Location"]
    assert step_up.startswith(reverse("mfa_reauthenticate"))

    # The code already used to sign in is refused at step-up; the next one lets the user through.
    assert client.post(step_up, {"code": totp_code(secret, at=time.time() - 30)}).status_code == 200
    done = client.post(step_up, {"code": totp_code(secret)})
    assert done.status_code == 302 and done["Location"] == url
    assert client.get(url).status_code == 200


def test_the_row_keeps_its_encrypted_secret_and_no_code(owner):
    secret = enrol_totp(owner)
    step = int(time.time() // 30)
    assert _second_factor(Client(), owner, totp_code(secret, at=step * 30))
    data = Authenticator.objects.get(user=owner, type=Authenticator.Type.TOTP).data
    assert data == {"secret": data["secret"], "last_step": step}
    assert secret not in data["secret"]
    assert MFA_CIPHER.decrypt(data["secret"].encode()).decode() == secret


def test_the_code_that_confirmed_the_set_up_cannot_sign_in(member, settings, cache_state):
    """The code typed on the set-up page is spent: someone who saw it over the shoulder cannot
    use it to sign in within its 30 seconds (allauth checked it outside the authenticator's row)."""
    settings.MFA_TOTP_TOLERANCE = 1  # the next time step's code is a right one too
    step = int(time.time() // 30)
    client = Client()
    password_step(client, member.email)
    assert client.get(reverse("mfa_activate_totp")).status_code == 200
    secret = client.session["mfa.totp.secret"]
    code = totp_code(secret, at=step * 30)
    assert client.post(reverse("mfa_activate_totp"), {"code": code}).status_code == 302
    authenticator = Authenticator.objects.get(user=member, type=Authenticator.Type.TOTP)
    assert authenticator.data["last_step"] == step

    assert not _second_factor(Client(), member, code)
    assert _second_factor(Client(), member, totp_code(secret, at=(step + 1) * 30))
