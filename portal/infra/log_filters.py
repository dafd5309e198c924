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
    # A password-reset link (allauth's `<user id>-<key>`), e.g. one a 301 or a refused POST names.
    (re.compile(r"(/password/reset/key/)[0-9A-Za-z]+-[^/\s'\"?]+"), r"\1[redacted]"),
    (re.compile(r"(whsec_[0-9A-Za-z]{4})[0-9A-Za-z]{8,}"), r"\1[redacted]"),  # webhook signing secrets
]
_TRIGGERS = ("ipk_", "ips_", "eyJ", "/invitations/", "/password/reset/key/", "whsec_")


def redact(text: str) -> str:
    """Return `text` with every API key, client secret, JWT, invitation token, password-reset key and
    webhook secret masked."""
    if not any(trigger in text for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """Return `text` with control characters escaped (`\\n`, `\\x00`): one log line stays one line.

    A path is decoded before it is logged: `%0A` would otherwise start a forged line.
    """
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


class PlainFormatter(logging.Formatter):
    """The plain line format: the message on one line, and no credential in a traceback either.

    The filter below masks messages and arguments; a traceback is formatted later, by the
    formatter, and may quote request data (an exception's message), so it is masked here.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))

    def formatException(self, ei) -> str:
        return redact(super().formatException(ei))


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
    """Drop the traceback Django attaches to a 4xx response's log line (and an ERROR level).

    A 403 from `PermissionDenied` or a 400 from `SuspiciousOperation` is the portal answering
    a request as designed; one line says so. Tracebacks stay for 5xx, where they mean a bug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                # Django logs a foreign Host header (django.security.DisallowedHost) as an ERROR:
                # anyone could raise alerts at will. A refused request is a warning at most.
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True
