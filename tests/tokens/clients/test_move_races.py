"""Races on PostgreSQL: a move against a rotation or a revoke of the same key; one of them wins, cleanly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke, api_key_rotate
from tests.support.threads import at_once
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _outcome(result) -> str:
    if isinstance(result, ValidationError):
        return f"refused:{result.code}"
    if isinstance(result, BaseException):
        return f"error:{type(result).__name__}:{result}"
    return "done"


@pytest.mark.parametrize("round_", range(3))
def test_a_move_racing_a_rotation_leaves_one_of_them(require_postgres, make_key, owner, round_):
    key, _ = make_key(name="contended")
    results = at_once(
        {
            "move": lambda: api_key_move_to_m2m_app(api_key=ApiKey.objects.get(pk=key.pk), actor=owner),
            "rotate": lambda: api_key_rotate(
                api_key=ApiKey.objects.get(pk=key.pk), actor=owner, overlap=timedelta(hours=1)
            ),
        }
    )
    outcomes = {name: _outcome(r) for name, r in results.items()}
    assert sorted(outcomes.values()) in (["done", "refused:moved"], ["done", "refused:rotated"]), outcomes
    moved = M2MApplication.objects.filter(moved_from_key=key).exists()
    rotated = ApiKey.objects.filter(replaces=key).exists()
    assert moved != rotated, outcomes


@pytest.mark.parametrize("round_", range(3))
def test_a_move_racing_a_revoke_never_moves_a_revoked_key(require_postgres, make_key, owner, round_):
    key, _ = make_key(name="contended")
    results = at_once(
        {
            "move": lambda: api_key_move_to_m2m_app(api_key=ApiKey.objects.get(pk=key.pk), actor=owner),
            "revoke": lambda: api_key_revoke(
                api_key=ApiKey.objects.get(pk=key.pk), actor=owner, reason="gone"
            ),
        }
    )
    outcomes = {name: _outcome(r) for name, r in results.items()}
    assert outcomes["revoke"] == "done", outcomes
    assert outcomes["move"] in ("done", "refused:inactive"), outcomes
    assert ApiKey.objects.get(pk=key.pk).status == "revoked"
    assert M2MApplication.objects.filter(moved_from_key=key).exists() == (outcomes["move"] == "done")
