"""The verification snippet in docs/webhooks.md works on a real delivery and refuses a forgery."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from credentials.webhooks.services import webhook_endpoint_ping
from tests.credentials.webhooks.conftest import deliver

pytestmark = pytest.mark.django_db


def _snippet():
    text = (Path(settings.BASE_DIR) / "docs" / "webhooks.md").read_text()
    code = re.search(r"### Verify in Python.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(code.splitlines()) <= 15  # "a dozen lines"
    namespace: dict = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    return namespace["verify_portal_webhook"]


def test_the_documented_snippet_verifies_a_delivery(owner, receiver, make_endpoint):
    verify = _snippet()
    endpoint, secret = make_endpoint()
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    (request,) = receiver.received
    assert verify(request.body, request.headers, secret) == str(delivery.event_id)
    with pytest.raises(ValueError, match="bad signature"):
        verify(request.body.replace(b"ping", b"pong"), request.headers, secret)
    with pytest.raises(ValueError, match="bad signature"):
        verify(request.body, request.headers, "whsec_" + "x" * 40)
    with pytest.raises(ValueError, match="stale"):
        verify(request.body, {**request.headers, "Portal-Webhook-Timestamp": "1"}, secret)
    with pytest.raises(ValueError, match="missing"):
        verify(request.body, {}, secret)
    with pytest.raises(ValueError, match="bad signature"):  # not a TypeError (a 500 in a receiver)
        verify(request.body, {**request.headers, "Portal-Webhook-Signature": "v1=\u00e9"}, secret)


@pytest.mark.parametrize("timestamp", ["1" + "0" * 400])
def test_the_documented_snippet_raises_value_error_for_odd_timestamps(timestamp):
    verify = _snippet()
    headers = {
        "Portal-Webhook-Id": "x",
        "Portal-Webhook-Timestamp": timestamp,
        "Portal-Webhook-Signature": "v1=0",
    }
    with pytest.raises(ValueError):
        verify(b"{}", headers, "whsec_a")
