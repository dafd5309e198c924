"""A client secret's last use is batched like an API key's: token requests write nothing themselves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from credentials import last_used
from tests.credentials.test_last_used import _writes, batched  # noqa: F401  the held-flush fixture
from tests.tokens.conftest import request_token
from tokens.models import ClientSecret

pytestmark = pytest.mark.django_db


def test_many_applications_cost_one_update_per_flush(batched, client, make_app):  # noqa: F811
    apps = [make_app(name=f"service {n}") for n in range(8)]
    assert request_token(client, apps[0]).status_code == 200  # creates the signing key
    last_used.flush()
    with CaptureQueriesContext(connection) as during:
        for app in apps[1:]:
            assert request_token(client, app).status_code == 200
    # Each token request: client authentication in one statement (and, when the per-process
    # cache entry has expired, the audience's catalogue entry), and no write.
    authentications = [q for q in during.captured_queries if ClientSecret._meta.db_table in q["sql"]]
    assert len(authentications) == len(apps) - 1 and not _writes(during.captured_queries)
    assert ClientSecret.objects.filter(last_used_at__isnull=False).count() == 1

    before = timezone.now()
    with CaptureQueriesContext(connection) as flushing:
        assert last_used.flush() == len(apps) - 1
    assert len(flushing) == 1 and len(_writes(flushing.captured_queries)) == 1
    for secret in ClientSecret.objects.all():
        assert before - timedelta(minutes=1) < secret.last_used_at <= before


def test_a_secret_used_again_before_the_flush_is_written_once(batched, client, app):  # noqa: F811
    assert request_token(client, app).status_code == 200
    assert request_token(client, app).status_code == 200
    with CaptureQueriesContext(connection) as flushing:
        assert last_used.flush() == 1
    assert len(_writes(flushing.captured_queries)) == 1
    assert app.application.secrets.get().last_used_at is not None


def test_outside_a_request_the_use_is_written_at_once(app):
    from tokens.protocol.oauth import authenticate_client_credentials, record_client_use

    authenticated = authenticate_client_credentials(app.client_id, app.client_secret)
    assert authenticated is not None
    # Authentication alone is not a use: the request it serves must succeed (record_client_use).
    assert app.application.secrets.get().last_used_at is None
    record_client_use(authenticated[1])
    assert app.application.secrets.get().last_used_at is not None
