"""Sign reports the way GitHub's secret scanning does, with a key pair a test generates."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.pem import public_pem

__all__ = ["keys_document", "public_pem", "sign"]


def keys_document(*pairs) -> str:
    """Return GitHub's public keys document for (key identifier, private key) pairs."""
    return json.dumps(
        {
            "public_keys": [
                {"key_identifier": kid, "key": public_pem(key), "is_current": index == 0}
                for index, (kid, key) in enumerate(pairs)
            ]
        }
    )


def sign(body: bytes, key) -> str:
    """Return the `Github-Public-Key-Signature` value for `body`: base64 of a DER ECDSA signature."""
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
