"""Two `seed_demo` runs at once on a fresh database (two `make run` in two terminals, or a container
entrypoint started twice): "idempotent" holds for overlapping runs too.

What was wrong: each step looked its row up and created it when missing; both runs found nothing
and the second create ended in an IntegrityError. On PostgreSQL the runs now take an advisory lock
in turn (SQLite has one writer anyway).
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from portal.models import Membership, Organization, User
from tests.support.threads import at_once


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_seed_demo_runs_at_once_both_succeed(require_postgres, settings):
    settings.DEBUG = True

    def seed():
        out = io.StringIO()
        call_command("seed_demo", stdout=out)
        return out.getvalue()

    results = at_once({"a": seed, "b": seed}, timeout=120)
    assert all(isinstance(v, str) and "Demo data ready" in v for v in results.values()), {
        k: repr(v) for k, v in results.items()
    }
    assert Organization.objects.filter(slug="acme").count() == 1
    assert User.objects.filter(email__in=["owner@acme.example", "dev@acme.example"]).count() == 2
    assert User.objects.filter(email="admin@portal.example", is_superuser=True).count() == 1
    assert Membership.objects.filter(organization__slug="acme").count() == 2
