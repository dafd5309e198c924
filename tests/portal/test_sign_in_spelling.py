"""Sign-in finds an account by its address ignoring letter case, and by no look-alike of it
(UserManager.get_by_natural_key). On PostgreSQL `email__iexact` compares UPPER() of both sides,
which folds the dotless ı into I and the long ſ into S: `admın@acme.test` signed in to
`admin@acme.test`, under a failed-sign-in budget of its own (the budget is keyed by str.lower())."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import User
from tests.factories import PASSWORD, UserFactory
from tests.portal.test_account_security import signed_in

pytestmark = pytest.mark.django_db

LOOKALIKES = ["admın@acme.test", "admin@acme.teſt", "ADMıN@ACME.TEST"]


def _attempt(login: str, password: str, ip: str = "198.51.100.1") -> Client:
    client = Client(REMOTE_ADDR=ip)
    client.post(reverse("login"), {"login": login, "password": password})
    return client


@pytest.mark.parametrize("spelling", ["dev@acme.test", "DEV@acme.test", "Dev@ACME.Test"])
def test_the_address_signs_in_in_any_letter_case(member, spelling):
    assert User.objects.get_by_natural_key(spelling) == member
    assert signed_in(_attempt(spelling, PASSWORD))


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_lookalike_of_the_address_finds_no_account(admin_user, lookalike):
    # On SQLite iexact never folded these; on PostgreSQL it did.
    with pytest.raises(User.DoesNotExist):
        User.objects.get_by_natural_key(lookalike)


@pytest.mark.postgres
@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_lookalike_of_the_address_does_not_sign_in(require_postgres, admin_user, lookalike):
    assert not signed_in(_attempt(lookalike, PASSWORD))


@pytest.mark.postgres
def test_a_lookalike_gets_no_fresh_failure_budget_for_the_account(require_postgres, admin_user, settings):
    # A distributed guesser spends the account's budget, then tries a look-alike spelling, which used
    # to be counted under a key of its own.
    for n in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        _attempt("admin@acme.test", "wrong-guess-123", f"198.51.100.{n + 1}")
    paused = Client(REMOTE_ADDR="198.51.100.50")
    assert (
        paused.post(reverse("login"), {"login": "admin@acme.test", "password": PASSWORD}).status_code == 429
    )
    assert not signed_in(_attempt("admın@acme.test", PASSWORD, "198.51.100.51"))


@pytest.mark.postgres
def test_an_account_beside_its_lookalike_still_signs_in(require_postgres, admin_user):
    # Both addresses pass the unique constraint (LOWER() keeps ı); iexact found both, and get() failed.
    lookalike = UserFactory(email="admın@acme.test")
    assert signed_in(_attempt("admin@acme.test", PASSWORD))
    assert User.objects.get_by_natural_key("ADMIN@acme.test") == admin_user
    assert User.objects.get_by_natural_key("admın@acme.test") == lookalike
