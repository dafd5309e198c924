"""verify_signature: the documented algorithm accepts genuine requests and rejects everything else."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from credentials.webhooks.signing import (
    SignatureError,
    decrypt_secret,
    encrypt_secret,
    generate_secret,
    sign,
    signature_header,
    verify_signature,
)

SECRET = "whsec_" + "a" * 40
BODY = b'{"id":"7d9f","type":"credential.rotated"}'


def _headers(*, body=BODY, secret=SECRET, timestamp=None, event_id="7d9f") -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Portal-Webhook-Id": event_id,
        "Portal-Webhook-Timestamp": str(timestamp),
        "Portal-Webhook-Signature": signature_header([secret], timestamp, body),
    }


def test_the_signature_is_the_documented_hmac():
    # HMAC-SHA256(secret, f"{timestamp}.{body}"), hex, as docs/webhooks.md says.
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, BODY) == expected
    assert signature_header([SECRET], 1700000000, BODY) == f"v1={expected}"


def test_a_genuine_request_verifies_and_returns_the_event_id():
    assert verify_signature(body=BODY, headers=_headers(), secret=SECRET) == "7d9f"


def test_header_names_are_case_insensitive():
    headers = {k.lower(): v for k, v in _headers().items()}
    assert verify_signature(body=BODY, headers=headers, secret=SECRET) == "7d9f"


def test_any_of_several_secrets_and_signatures_may_match():
    timestamp = int(time.time())
    headers = _headers(timestamp=timestamp)
    headers["Portal-Webhook-Signature"] = signature_header(["whsec_new", SECRET], timestamp, BODY)
    assert verify_signature(body=BODY, headers=headers, secret=SECRET)
    assert verify_signature(body=BODY, headers=headers, secret=["whsec_other", "whsec_new"])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("tampered body", "no valid signature"),
        ("wrong secret", "no valid signature"),
        ("old timestamp", "timestamp outside the tolerance"),
        ("future timestamp", "timestamp outside the tolerance"),
        ("timestamp changed after signing", "no valid signature"),
        ("missing signature", "missing webhook header"),
        ("missing timestamp", "missing webhook header"),
        ("missing id", "missing webhook header"),
        ("malformed timestamp", "malformed timestamp"),
        ("unknown version", "no valid signature"),
        ("empty signature", "missing webhook header"),
        ("truncated signature", "no valid signature"),
        ("non-ascii signature", "no valid signature"),
        ("huge timestamp", "malformed timestamp"),
    ],
)
def test_rejections(case, message):
    body, secret, headers = BODY, SECRET, _headers()
    now = int(time.time())
    if case == "tampered body":
        body = BODY.replace(b"rotated", b"revoked")
    elif case == "wrong secret":
        secret = "whsec_" + "b" * 40
    elif case == "old timestamp":
        headers = _headers(timestamp=now - 301)
    elif case == "future timestamp":
        headers = _headers(timestamp=now + 301)
    elif case == "timestamp changed after signing":
        headers["Portal-Webhook-Timestamp"] = str(now - 1)
        headers["Portal-Webhook-Signature"] = signature_header([SECRET], now, BODY)
    elif case.startswith("missing"):
        name = {"signature": "Signature", "timestamp": "Timestamp", "id": "Id"}[case.split()[1]]
        del headers[f"Portal-Webhook-{name}"]
    elif case == "malformed timestamp":
        headers["Portal-Webhook-Timestamp"] = "yesterday"
    elif case == "unknown version":
        headers["Portal-Webhook-Signature"] = headers["Portal-Webhook-Signature"].replace("v1=", "v0=")
    elif case == "empty signature":
        headers["Portal-Webhook-Signature"] = ""
    elif case == "truncated signature":
        headers["Portal-Webhook-Signature"] = headers["Portal-Webhook-Signature"][:-2]
    elif case == "non-ascii signature":
        headers["Portal-Webhook-Signature"] = "v1=\u00e9" + headers["Portal-Webhook-Signature"][4:]
    elif case == "huge timestamp":
        headers["Portal-Webhook-Timestamp"] = "9" * 5000
    with pytest.raises(SignatureError, match=message):
        verify_signature(body=body, headers=headers, secret=secret)


def test_the_tolerance_is_adjustable():
    headers = _headers(timestamp=int(time.time()) - 600)
    assert verify_signature(body=BODY, headers=headers, secret=SECRET, tolerance_seconds=900)


def test_secrets_are_random_and_encrypted_at_rest(settings):
    first, second = generate_secret(), generate_secret()
    assert first != second and first.startswith("whsec_") and len(first) == 46
    stored = encrypt_secret(first)
    assert first.encode() not in stored and first[6:].encode() not in stored
    assert decrypt_secret(stored) == first
    # A key change: the old key still decrypts while it is listed as old.
    old_key = settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY
    from cryptography.fernet import Fernet

    settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = [old_key]
    assert decrypt_secret(stored) == first


@pytest.mark.parametrize("timestamp", ["1" + "0" * 400, "-" + "9" * 400])
def test_a_huge_timestamp_is_a_signature_error_not_an_overflow(timestamp):
    body = b"{}"
    headers = {
        "Portal-Webhook-Id": "x",
        "Portal-Webhook-Timestamp": timestamp,
        "Portal-Webhook-Signature": "v1=" + sign("whsec_a", int(time.time()), body),
    }
    with pytest.raises(SignatureError):
        verify_signature(body=body, headers=headers, secret="whsec_a")


def test_the_event_id_a_receiver_deduplicates_on_is_covered_by_the_signature():
    """A captured delivery replayed within the tolerance under a new Portal-Webhook-Id must not verify.

    Receivers are told to deduplicate on the id verify_signature returns; it comes from an
    unsigned header, so a replay with a fresh id header passes both the signature and the dedup.
    """
    secret = "whsec_" + "a" * 40
    body = json.dumps({"id": "0b6c1c5e-7d7e-4a4e-9d54-3f0f2f1f6b1a", "type": "credential.leaked"}).encode()
    timestamp = int(time.time())
    genuine = {
        "Portal-Webhook-Id": "0b6c1c5e-7d7e-4a4e-9d54-3f0f2f1f6b1a",
        "Portal-Webhook-Timestamp": str(timestamp),
        "Portal-Webhook-Signature": "v1=" + sign(secret, timestamp, body),
    }
    assert verify_signature(body=body, headers=genuine, secret=secret) == genuine["Portal-Webhook-Id"]
    replayed = {**genuine, "Portal-Webhook-Id": "11111111-1111-1111-1111-111111111111"}
    with pytest.raises(SignatureError, match="event id"):
        verify_signature(body=body, headers=replayed, secret=secret)
