"""The dashboard move for real: the `curl` command its reveal shows gets a token from a live server,
and both credentials then work side by side during the cut-over."""

from __future__ import annotations

import html
import json
import re
import shlex
import shutil
import subprocess
import time

import pytest
import requests

from credentials.api_keys.models import ApiKey
from tests.credentials.conftest import fresh_usage_counters  # noqa: F401  (a fixture)
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_revealed_curl_command_works_and_both_credentials_are_used(
    live_server,
    owner_client,
    make_key,
    fresh_usage_counters,  # noqa: F811
):
    api_key, key_plain = make_key(name="nightly export", scopes=("orders:read",))
    page = owner_client.post(f"/orgs/acme/api-keys/{api_key.key_id}/move/", {"name": "nightly export"})
    assert page.status_code == 201, page.content[:500]
    found = re.search(r"curl -s -u [^<]+", page.content.decode())
    assert found, page.content[:2000]
    command = html.unescape(found.group(0)).replace("http://testserver", live_server.url)
    out = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=20, check=True)
    token = json.loads(out.stdout)["access_token"]

    me = requests.get(
        f"{live_server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert me.status_code == 200, me.text
    assert me.json()["credential_type"] == "access_token" and me.json()["scopes"] == ["orders:read"]
    for _ in range(2):
        r = requests.get(f"{live_server.url}/api/v1/whoami", headers={"X-API-Key": key_plain}, timeout=10)
        assert r.status_code == 200
    application = M2MApplication.objects.get(moved_from_key=api_key)
    # The server writes last-used when a request finishes, after the client has its answer (the
    # live server's thread): wait for both writes (a bounded wait, not a timing assertion).
    assert _eventually(lambda: ClientSecret.objects.get(application=application).last_used_at is not None)
    assert _eventually(lambda: ApiKey.objects.get(pk=api_key.pk).last_used_at is not None)


def _eventually(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
