"""Receive leaked-secret reports: recognise the secret, act per the organisation's policy, record, notify.

Each report runs in its own transaction with the credential's row locked (after the requests
waiting about it, the order every write takes), so a replayed or concurrent report of the same
secret finds the first one's `LeakReport` (unique by the token's SHA-256) and changes nothing:
no second revocation, audit event or email.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from credentials.governance import approvals
from credentials.governance.common import about, audit_change
from credentials.governance.models import CredentialStatus, LeakedCredentialAction, SuspensionReason
from credentials.governance.notices import notice_send_once
from credentials.governance.org_policy import policy_for
from credentials.governance.ownership import notice_recipients
from credentials.governance.registry import GovernedKind, SecretMatch, all_kinds
from credentials.governance.reviews import credential_revoke, credential_suspend
from credentials.leaks.models import MAX_SIGHTINGS, LeakAction, LeakReport

logger = logging.getLogger(__name__)

MAX_ENTRIES = 1000
MAX_TYPE_LENGTH = 100
MAX_URL_LENGTH = 2048
MAX_SOURCE_LENGTH = 64
#: Characters no reported string keeps: control characters (PostgreSQL refuses NUL), format
#: characters (a right-to-left override would disguise the url on the page) and lone surrogates
#: (JSON allows "\ud800"; UTF-8, and so the database, does not).
_UNPRINTABLE = ("Cc", "Cf", "Cs")


@dataclass(frozen=True)
class ReportedToken:
    """One entry of a secret-scanning alert: the token and where it was found."""

    token: str
    token_type: str
    url: str
    source: str = ""

    @property
    def sha256(self) -> str:
        """Return the SHA-256 hex of the token: GitHub's `token_hash`, and the report's identity."""
        return hashlib.sha256(self.token.encode()).hexdigest()

    def __repr__(self) -> str:  # never print the token, even in a traceback
        return f"ReportedToken(type={self.token_type!r}, url={self.url!r}, source={self.source!r})"


def _printable(value: str, limit: int) -> str:
    """Return `value` with unprintable characters replaced by U+FFFD, cut to `limit` characters."""
    value = value.strip()[:limit]
    if value.isprintable():
        return value
    return "".join("\ufffd" if unicodedata.category(c) in _UNPRINTABLE else c for c in value)


def _metadata(entry: dict, name: str, limit: int, index: int, *, required: bool = False) -> str:
    """Return a descriptive member (type, url, source): a string, cleaned and cut; null or absent is ''."""
    value = entry.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"Entry {index}: '{name}' must be a string.", code="entry")
    return _printable(value, limit)


def reported_tokens_parse(body: bytes) -> list[ReportedToken]:
    """Parse GitHub's alert body, a JSON array of `{token, type, url, source}`, all or nothing.

    The shape is strict (an array of objects, each with a string `token` and `type`); a token
    of any length is taken (one too long to be ours is acknowledged like any stranger's, not a
    reason to refuse the leaked secrets next to it; the body's size bounds it); the
    description is lenient, so odd metadata never keeps a leaked secret working: `url`
    ("may be empty", GitHub says) and `source` may be null or absent, and over-long or
    unprintable descriptions are cut and cleaned rather than refused.
    Raise ValidationError with a message naming the first problem (never echoing a token).
    """
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a signed body of nothing but "[[[[…" nests deeper than the decoder goes.
        raise ValidationError("The body is not valid JSON.", code="malformed") from None
    if not isinstance(document, list):
        raise ValidationError("Expected a JSON array of reported tokens.", code="not_array")
    if not document:
        raise ValidationError("The array is empty.", code="empty")
    if len(document) > MAX_ENTRIES:
        raise ValidationError(f"At most {MAX_ENTRIES} tokens per request.", code="too_many")
    entries = []
    for index, entry in enumerate(document):
        if not isinstance(entry, dict):
            raise ValidationError(f"Entry {index} is not an object.", code="entry")
        token = entry.get("token")
        if not isinstance(token, str):
            raise ValidationError(f"Entry {index}: 'token' must be a string.", code="entry")
        if not token.strip():
            raise ValidationError(f"Entry {index}: 'token' is empty.", code="entry")
        entries.append(
            ReportedToken(
                token=token.strip(),
                token_type=_metadata(entry, "type", MAX_TYPE_LENGTH, index, required=True),
                url=_metadata(entry, "url", MAX_URL_LENGTH, index),
                source=_metadata(entry, "source", MAX_SOURCE_LENGTH, index),
            )
        )
    return entries


def _match(token: str) -> tuple[GovernedKind, SecretMatch] | tuple[None, None]:
    for kind in all_kinds():
        match = kind.match_secret(token)
        if match is not None:
            return kind, match
    return None, None


def leak_report_receive(*, reported: ReportedToken, reporter: str = "github") -> LeakReport | None:
    """Handle one reported token; return its report, or None when it is not one of ours.

    The first report of a secret revokes (or suspends, per the organisation's policy) what it
    opens, records a `LeakReport`, writes `<kind>.leaked` to the audit log and emails the
    owner and the organisation's admins. A later report of the same secret only notes a new
    place it was seen.
    """
    kind, match = _match(reported.token)
    if kind is None:
        return None
    return _record(kind=kind, match=match, reported=reported, reporter=reporter)


@transaction.atomic
def _record(
    *, kind: GovernedKind, match: SecretMatch, reported: ReportedToken, reporter: str
) -> LeakReport | None:
    # The requests waiting about the credential before the credential (docs/governance.md, "Every
    # write takes its row locks in one order"): a revocation closes them (`api_key_revoke` locks
    # them), and a decision on one locks it, then the credential; the other order deadlocked with
    # it on PostgreSQL. An M2M report never revokes the application (only the leaked secret, or a
    # suspension, neither closing a request), so its trusts' requests need no lock here.
    # The unsaved row stands in for the credential: the helper reads only its kind and pk.
    approvals.waiting_requests_locked([kind.model(pk=match.object_id)])
    credential = (
        kind.model.objects.select_for_update(of=("self",))
        .select_related("organization", "owner")
        .filter(pk=match.object_id)
        .first()
    )
    if credential is None:
        return None  # deleted (with its organisation) since the first look: nothing left to protect
    fingerprint = reported.sha256
    existing = LeakReport.objects.select_for_update().filter(token_sha256=fingerprint).first()
    if existing is not None:
        return _add_sighting(existing, reported)
    # Look again under the lock: the secret may have been revoked since the first look.
    match = kind.match_secret(reported.token) or match
    action = _decide(kind, credential, match)
    try:
        with transaction.atomic():
            report = LeakReport.objects.create(
                **about(credential, kind),
                secret_hint=match.secret_hint[:40],
                token_sha256=fingerprint,
                token_type=reported.token_type[:100],
                url=reported.url[:2048],
                source=reported.source[:64],
                reporter=reporter[:64],
                action_taken=action,
            )
    except IntegrityError:
        # Only reachable where the credential lock did not serialise us (a second kind
        # claiming the same token): the other report stands, this one changes nothing.
        return LeakReport.objects.get(token_sha256=fingerprint)
    previous_reason = credential.suspension_reason
    credential = _act(kind, credential, match, action)
    extra = {
        "url": report.url[:1000],
        "source": report.source,
        "type": report.token_type,
        "action": action,
        "secret": report.secret_hint,
        "report_id": report.pk,
        "reporter": report.reporter,
    }
    if action == LeakAction.SUSPENDED and previous_reason:
        extra["previous_suspension_reason"] = previous_reason
    audit_change(kind, "leaked", credential=credential, actor=None, extra=extra)
    if action != LeakAction.NONE:
        notice_send_once(
            credential=credential,
            notice_type="leaked",
            period=f"leak-{report.pk}",
            recipients=notice_recipients(credential),
            context={"report": report},
        )
    logger.info(
        "Leak report %s: %s %s found by %s, action %s", report.pk, kind.key, credential.pk, reporter, action
    )
    return report


def _decide(kind: GovernedKind, credential: models.Model, match: SecretMatch) -> str:
    """Return what the organisation's policy does about this leak, given the credential's state."""
    if credential.status not in (CredentialStatus.ACTIVE, CredentialStatus.SUSPENDED):
        return LeakAction.NONE  # revoked, or never issued: the secret opens nothing
    if not match.secret_live:
        # The secret stopped working already: a client secret revoked or expired, an API key past
        # its expiry (or rotated away, its overlap over). Revoking the key now would only tell its
        # owner to replace a key whose successor works.
        return LeakAction.NONE
    policy = policy_for(credential.organization).leaked_credential_action
    if policy == LeakedCredentialAction.SUSPEND:
        return LeakAction.SUSPENDED
    return LeakAction.SECRET_REVOKED if kind.revoke_secret is not None else LeakAction.REVOKED


def _act(kind: GovernedKind, credential: models.Model, match: SecretMatch, action: str) -> models.Model:
    """Do `action`; return the credential as it now is (the services return their own fresh row)."""
    reason = "Its secret was reported leaked in public by a secret scanner."
    if action == LeakAction.REVOKED:
        return credential_revoke(credential=credential, actor=None, reason=reason) or credential
    if action == LeakAction.SECRET_REVOKED:
        kind.revoke_secret(credential, match, None)
    elif action == LeakAction.SUSPENDED:
        if credential.status == CredentialStatus.ACTIVE:
            return credential_suspend(credential=credential, actor=None, reason=SuspensionReason.LEAKED)
        if credential.suspension_reason == SuspensionReason.LEAKED:
            # Suspended for a leak already (another of its secrets, say, during a rotation's
            # overlap): nothing about the suspension changes, so no second `suspended` event.
            return credential
        # Already suspended for another reason (say, orphaned): mark it leaked, so reassigning an
        # owner or a review cannot lift the suspension by itself; only an explicit restore does.
        previous = credential.suspension_reason
        credential.suspension_reason = SuspensionReason.LEAKED
        credential.save(update_fields=["suspension_reason", kind.touch_field])
        # Subscribers of `suspended` learn the new reason (docs/leak-reports.md).
        extra = {"reason": SuspensionReason.LEAKED, "previous_reason": previous}
        audit_change(kind, "suspended", credential=credential, actor=None, extra=extra)
        kind.changed(credential)
    return credential


def _add_sighting(report: LeakReport, reported: ReportedToken) -> LeakReport:
    url = reported.url[:2048]
    seen = {report.url, *(s.get("url") for s in report.sightings)}
    if url in seen or len(report.sightings) >= MAX_SIGHTINGS:
        return report
    report.sightings = [
        *report.sightings,
        {"url": url, "source": reported.source[:64], "at": timezone.now().isoformat()},
    ]
    report.save(update_fields=["sightings"])
    return report


class LeakReportsIncomplete(Exception):
    """Some tokens of an alert could not be handled (the others were); the sender should retry."""


def leak_reports_receive(*, reported: list[ReportedToken], reporter: str = "github") -> int:
    """Handle a whole alert (each token in its own transaction); return how many were ours.

    A token whose handling fails (the database went away mid-alert, say) does not stop the
    ones after it: each is tried, then LeakReportsIncomplete is raised so the sender retries
    the alert, and the tokens already handled are replays the second time.
    """
    recognised = failed = 0
    for index, item in enumerate(reported):
        try:
            if leak_report_receive(reported=item, reporter=reporter) is not None:
                recognised += 1
        except Exception:  # noqa: BLE001  logged, counted, and answered with a retry below
            failed += 1
            logger.exception("Secret scanning alert from %s: entry %d could not be handled", reporter, index)
    logger.info(
        "Secret scanning alert from %s: %d token(s), %d recognised, %d failed",
        reporter,
        len(reported),
        recognised,
        failed,
    )
    if failed:
        raise LeakReportsIncomplete(f"{failed} of {len(reported)} reported tokens could not be handled.")
    return recognised
