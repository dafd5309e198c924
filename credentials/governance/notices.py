"""Lifecycle emails, each sent once (a unique Notice row), and the `expiring` webhook that goes with them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, models, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from credentials.governance.models import CredentialStatus, Notice, SuspensionReason
from credentials.governance.ownership import managers_of, notice_recipients
from credentials.governance.registry import all_kinds, credential_path, kind_of
from credentials.governance.selectors import KIND_COLUMNS, flag_q
from credentials.webhooks.events import webhook_event_emit

logger = logging.getLogger(__name__)


def notice_send_once(
    *,
    credential: models.Model,
    notice_type: str,
    period: str,
    recipients: Iterable[str],
    context: dict[str, Any] | None = None,
) -> bool:
    """Record a notice and email it after commit, unless it was already sent; return whether it is new.

    The unique (credential, notice type, period) row makes this safe from cron at any
    frequency and from concurrent runs. A notice the mail server refuses is not kept as sent:
    its row is deleted, so the next scheduled run sends it again.
    """

    kind = kind_of(credential)
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return False
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                organization=credential.organization,
                kind=kind.key,
                object_id=credential.pk,
                notice_type=notice_type,
                period=period[:64],
                recipients=recipients,
            )
    except IntegrityError:
        return False
    link = settings.PORTAL_BASE_URL + (
        _approvals_path(credential) if notice_type == "approval_requested" else credential_path(credential)
    )
    body_context = {
        "credential": credential,
        "kind": kind,
        "notice_type": notice_type,
        "link": link,
        "organization": credential.organization,
        **(context or {}),
    }
    # One line: a name may hold a line break, which a mail header refuses (BadHeaderError).
    subject = " ".join(render_to_string("credentials/governance/email/subject.txt", body_context).split())
    body = render_to_string("credentials/governance/email/notice.txt", body_context)

    def send() -> None:
        try:
            send_mail(subject, body, None, recipients)
        except Exception:  # a mail outage must not break the change that caused the notice
            logger.warning(
                "Could not send the %s notice for %s %s; not recorded as sent (the next run sends a "
                "scheduled one again)",
                notice_type,
                kind.key,
                credential.pk,
                exc_info=True,
            )
            _notice_forget(notice)

    transaction.on_commit(send)
    return True


def _notice_forget(notice: Notice) -> None:
    """Delete the row of a notice that was not sent, in its own transaction (after the commit)."""
    try:
        with transaction.atomic():
            Notice.objects.filter(pk=notice.pk).delete()
    except DatabaseError:
        logger.warning("Could not forget the unsent notice %s", notice.pk, exc_info=True)


def _approvals_path(credential) -> str:

    return reverse("org-approvals", kwargs={"org_slug": credential.organization.slug})


REVIEW_DUE_NOTICE_WITHIN = timedelta(days=14)


def _scheduled_notices(now: datetime) -> Iterable[tuple[str, models.Q, str]]:
    """Yield (notice type, condition on the inventory queryset, column whose value is the period)."""

    active = models.Q(status=CredentialStatus.ACTIVE)
    # A credential with 3 days or less left gets only the 3-day notice; a rotated API key,
    # which expires at the end of its overlap by design, gets none.
    current = models.Q(row_superseded=False)
    yield (
        "expiring_14d",
        current & flag_q("expiring", now) & models.Q(row_expires__gt=now + timedelta(days=3)),
        "row_expires",
    )
    yield (
        "expiring_3d",
        current & active & models.Q(row_expires__gt=now, row_expires__lte=now + timedelta(days=3)),
        "row_expires",
    )
    # The rest are about credentials that still work: an expired one (an API key past its
    # expiry, a rotated-away predecessor) needs no review, owner or restore any more.
    working = current & (models.Q(row_expires__isnull=True) | models.Q(row_expires__gt=now))
    yield (
        "review_due",
        working & active & models.Q(review_due_at__gt=now, review_due_at__lte=now + REVIEW_DUE_NOTICE_WITHIN),
        "review_due_at",
    )
    # One e-mail per event: a credential suspended because it was overdue (orphaned), in this
    # run or an earlier one, hears it from `suspended` (its subject says so, its body how to
    # restore it), not from the overdue (orphan) notice too. The review_overdue one is only for
    # active credentials: a manual or leak suspension is not lifted by a review either.
    yield "review_overdue", working & active & flag_q("review_overdue", now), "review_due_at"
    suspended_as_orphan = models.Q(
        status=CredentialStatus.SUSPENDED, suspension_reason=SuspensionReason.ORPHANED
    )
    yield "orphaned", working & flag_q("orphaned", now) & ~suspended_as_orphan, "orphaned_at"
    yield "suspended", working & flag_q("suspended", now), "suspended_at"


def credential_notices_send(*, now: datetime | None = None) -> int:
    """Email every lifecycle notice that is due and was not sent before; return how many were sent.

    Each (credential, notice, period) goes out once, however often this runs: the period is
    the date the notice is about (the expiry, the due date, when it was orphaned or suspended),
    so a new due date after a review brings a new notice.
    """

    now = now or timezone.now()
    managers: dict[int, list[str]] = {}
    sent = 0
    for kind in all_kinds():
        for notice_type, condition, period_column in _scheduled_notices(now):
            rows = kind.inventory_queryset(None).filter(condition).values(*KIND_COLUMNS)
            for values in rows.iterator(chunk_size=500):
                period = values[period_column]
                if period is None:
                    continue
                if Notice.objects.filter(
                    kind=kind.key, object_id=values["id"], notice_type=notice_type, period=period.isoformat()
                ).exists():
                    continue
                credential = kind.model.objects.select_related("organization", "owner").get(pk=values["id"])
                org_id = credential.organization_id
                if org_id not in managers:
                    managers[org_id] = [u.email for u in managers_of(credential.organization)]
                recipients = (
                    list(managers[org_id])
                    if notice_type == "orphaned"
                    else notice_recipients(credential, managers=managers[org_id])
                )
                with transaction.atomic():
                    if notice_send_once(
                        credential=credential,
                        notice_type=notice_type,
                        period=period.isoformat(),
                        recipients=recipients,
                        context={"when": period},
                    ):
                        sent += 1
                        if notice_type.startswith("expiring"):
                            _expiring_webhook(credential, notice_type, period)
    return sent


def _expiring_webhook(credential, notice_type: str, expires_at: datetime) -> None:
    """Queue the `credential.expiring` webhook with its notice (no audit event exists for it)."""

    webhook_event_emit(
        event="expiring",
        credential=credential,
        actor=None,
        extra={"expires_at": expires_at.isoformat(), "notice": notice_type},
    )
