"""A fast client-secret hasher for django-oauth-toolkit's CLIENT_SECRET_HASHER setting."""

import hashlib

from django.contrib.auth.hashers import MD5PasswordHasher


class FastSHA256Hasher(MD5PasswordHasher):
    """Hash with one salted SHA-256 round.

    Safe only for high-entropy random secrets (NIST SP 800-63B), never for human passwords.
    Django's salted MD5 hasher already verifies by re-encoding and comparing in constant
    time; only the digest changes.
    """

    algorithm = "fast_sha256"

    def encode(self, password, salt):
        self._check_encode_args(password, salt)
        digest = hashlib.sha256((salt + password).encode()).hexdigest()
        return f"{self.algorithm}${salt}${digest}"
