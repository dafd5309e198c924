"""A logging filter that masks credentials a client put where they do not belong (URLs, mostly)."""

from __future__ import annotations

import logging
import re

# Keep what is public (the key id, the secret's hint) so a log line still says which credential.
_PATTERNS = [
    (re.compile(r"(ipk_(?:live|test)_[0-9A-Za-z]{12})[0-9A-Za-z]+"), r"\1[redacted]"),
    (re.compile(r"(ips_[0-9A-Za-z]{4})[0-9A-Za-z]{8,}"), r"\1[redacted]"),
    (re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]+"), "[redacted-jwt]"),
    (re.compile(r"(/invitations/)[^/\s'\"?]+"), r"\1[redacted]"),
    (re.compile(r"(whsec_[0-9A-Za-z]{4})[0-9A-Za-z]{8,}"), r"\1[redacted]"),  # webhook signing secrets
]
_TRIGGERS = ("ipk_", "ips_", "eyJ", "/invitations/", "whsec_")


def redact(text: str) -> str:
    """Return `text` with every API key, client secret, JWT, invitation token and webhook secret masked."""
    if not any(trigger in text for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    """Mask credentials in a record's message and arguments.

    Django logs the path of every 4xx/5xx response ("Not Found: /…"); a client that puts a
    key or token in a URL would otherwise have it written to the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  a malformed record is logging's problem, not ours
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class ClientErrorsWithoutTraceback(logging.Filter):
    """Drop the traceback Django attaches to a 4xx response's log line.

    A 403 from `PermissionDenied` or a 400 from `SuspiciousOperation` is the portal answering
    a request as designed; one line says so. Tracebacks stay for 5xx, where they mean a bug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
