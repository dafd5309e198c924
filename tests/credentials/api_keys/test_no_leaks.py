"""Issue, use, rotate and revoke keys through every interface, then look for the plaintexts everywhere."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from portal.models import User
from tests.factories import enrol_totp

KEY_RE = re.compile(r"ipk_(?:live|test)_[0-9A-Za-z]{50}")


@pytest.mark.django_db
def test_plaintext_keys_appear_only_in_their_creating_response(owner, member, scopes, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # log every SQL statement with its parameters
    responses: list[tuple[str, bytes]] = []
    created_by: dict[str, str] = {}  # plaintext -> label of the one response allowed to hold it

    def record(label, response):
        body = response.content if hasattr(response, "content") else response
        responses.append((label, body))
        return response

    def created(label, plaintext):
        assert plaintext not in created_by
        created_by[plaintext] = label

    try:
        # --- CLI -------------------------------------------------------------------------
        out = io.StringIO()
        call_command(
            "create_api_key",
            "--org=acme",
            "--name=automation",
            f"--owner={owner.email}",
            "--scopes=api_keys:manage api_keys:verify orders:read",
            "--expires-in-days=30",
            "--json",
            stdout=out,
        )
        cli = json.loads(out.getvalue())
        assert set(cli) >= {"id", "key"}
        record("cli create", out.getvalue().encode())
        created("cli create", cli["key"])
        machine = Client(HTTP_AUTHORIZATION=f"Bearer {cli['key']}")

        # --- dashboard -------------------------------------------------------------------
        browser = Client()
        browser.force_login(owner)
        create_url = reverse("org-api-key-create", args=["acme"])
        page = record("dash create form", browser.get(create_url))
        token = re.search(r'name="submission" value="([^"]+)"', page.content.decode()).group(1)
        response = record(
            "dash create",
            browser.post(
                create_url,
                {
                    "submission": token,
                    "name": "web",
                    "owner": member.pk,
                    "scopes": ["orders:read"],
                    "environment": "live",
                },
            ),
        )
        dash_key = KEY_RE.search(response.content.decode()).group(0)
        created("dash create", dash_key)
        dash_row = ApiKey.objects.get(name="web")
        record("dash list", browser.get(reverse("org-api-keys", args=["acme"])))
        rotate_url = reverse("org-api-key-rotate", args=["acme", dash_row.key_id])
        token = re.search(
            r'name="submission" value="([^"]+)"', browser.get(rotate_url).content.decode()
        ).group(1)
        response = record(
            "dash rotate", browser.post(rotate_url, {"submission": token, "overlap_hours": "1"})
        )
        dash_rotated = KEY_RE.search(response.content.decode()).group(0)
        created("dash rotate", dash_rotated)
        record(
            "dash reload", browser.post(rotate_url, {"submission": token, "overlap_hours": "1"}, follow=True)
        )
        successor = ApiKey.objects.get(replaces=dash_row)
        record(
            "dash revoke",
            browser.post(
                reverse("org-api-key-revoke", args=["acme", successor.key_id]), {"reason": "x"}, follow=True
            ),
        )
        record("dash detail", browser.get(reverse("org-api-key-detail", args=["acme", dash_row.key_id])))
        record("dash home", browser.get(reverse("org-home", args=["acme"])))
        record("dash audit", browser.get(reverse("org-audit", args=["acme"])))

        # --- REST API, by session and by key ----------------------------------------------
        api = "/api/v1/orgs/acme/api-keys/"
        response = record(
            "api create (session)",
            browser.post(api, {"name": "svc", "scopes": ["orders:read"]}, "application/json"),
        )
        api_key = response.json()["key"]
        created("api create (session)", api_key)
        api_id = response.json()["id"]
        response = record(
            "api rotate (key)",
            machine.post(f"{api}{api_id}/rotate/", {"overlap_hours": 24}, "application/json"),
        )
        api_rotated = response.json()["successor"]["key"]
        created("api rotate (key)", api_rotated)
        response = record("api create (key)", machine.post(api, {"name": "by machine"}, "application/json"))
        machine_made = response.json()["key"]
        created("api create (key)", machine_made)
        record("api patch", machine.patch(f"{api}{api_id}/", {"name": "svc renamed"}, "application/json"))
        record("api list", machine.get(api))
        record("api retrieve", browser.get(f"{api}{api_id}/"))
        record(
            "api revoke",
            browser.post(f"{api}{response.json()['id']}/revoke/", {"reason": "done"}, "application/json"),
        )

        # --- use every key: whoami and central verification --------------------------------
        for plaintext in list(created_by):
            for client in (
                Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"),
                Client(HTTP_X_API_KEY=plaintext),
            ):
                record("whoami", client.get("/api/v1/whoami"))
            record("whoami in query", Client().get(f"/api/v1/whoami?api_key={plaintext}"))
            record("verify", machine.post("/api/v1/keys/verify", {"key": plaintext}, "application/json"))
            bad = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
            record("whoami bad", Client(HTTP_AUTHORIZATION=f"Bearer {bad}").get("/api/v1/whoami"))

        # --- the admin ---------------------------------------------------------------------
        staff = User.objects.create_superuser(email="staff@portal.test", password="x-very-long-password")
        enrol_totp(staff)  # staff use the admin only with a second factor
        admin = Client()
        admin.force_login(staff)
        record("admin list", admin.get(reverse("admin:credentials_apikey_changelist")))
        for row in ApiKey.objects.all():
            record("admin change", admin.get(reverse("admin:credentials_apikey_change", args=[row.pk])))
        record(
            "admin revoke",
            admin.post(
                reverse("admin:credentials_apikey_changelist"),
                {"action": "revoke_selected", "_selected_action": [r.pk for r in ApiKey.objects.all()]},
                follow=True,
            ),
        )
        record("admin audit", admin.get(reverse("admin:portal_auditevent_changelist")))
    finally:
        connection.force_debug_cursor = False

    assert len(created_by) == 6
    assert ApiKey.objects.count() == 6 and not ApiKey.objects.filter(status="active").exists()

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    database = dump.getvalue()
    assert (
        "credentials.apikey" in database
        and "portal.auditevent" in database
        and "sessions.session" in database
    )
    cached = b"".join(v for v in cache._cache.values() if isinstance(v, bytes))
    logs = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "SELECT" in logs  # SQL was logged, so the search below covers it

    for plaintext, allowed in created_by.items():
        secret_part = plaintext[len("ipk_live_") + 12 : -6]
        assert plaintext not in database and secret_part not in database, allowed
        assert secret_part not in logs, allowed
        assert secret_part.encode() not in cached, allowed
        holders = [label for label, body in responses if secret_part.encode() in body]
        assert holders == [allowed], (allowed, holders)
