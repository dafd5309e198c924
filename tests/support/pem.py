"""PEM encodings of key pairs the tests generate (a workload's private_key_jwt key, a scanner's key)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def public_pem(private_key) -> str:
    """Return the PEM of a private key's public half."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(private_key) -> str:
    """Return the unencrypted PKCS#8 PEM of a private key."""
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def pem_pair(private_key=None) -> tuple[str, str]:
    """Return `(private PEM, public PEM)` of `private_key` (a new P-256 key unless given)."""
    if private_key is None:
        private_key = ec.generate_private_key(ec.SECP256R1())
    return private_pem(private_key), public_pem(private_key)
