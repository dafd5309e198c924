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


# How long a notice the mail server did not take is tried again (by every `send_credential_notices`
# run); an older one stays in the admin's Notices list as not sent. A notice younger than
# NOTICE_RETRY_AFTER is left to the process that recorded it (its send may still be under way).
NOTICE_RETRY_FOR = timedelta(days=3)
NOTICE_RETRY_AFTER = timedelta(minutes=2)


def notice_send_once(
    *,
    credential: models.Model,
    notice_type: str,
    period: str,
    recipients: Iterable[str],
    context: dict[str, Any] | None = None,
) -> bool:
    """Record a notice and email it after commit, unless it was already due before; return whether it is new.

    The unique (credential, notice type, period) row makes this safe from cron at any
    frequency and from concurrent runs. The row keeps the message until the mail server takes
    it: a notice it refuses, or that a killed process never sent, goes out with the next
    `send_credential_notices` run (`notices_retry`).
    """

    kind = kind_of(credential)
    recipients = sorted({r for r in recipients if r})
    if not recipients:
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
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                organization=credential.organization,
                kind=kind.key,
                object_id=credential.pk,
                notice_type=notice_type,
                period=period[:64],
                recipients=recipients,
                subject=subject,
                body=body,
            )
    except IntegrityError:
        return False
    transaction.on_commit(lambda: notice_deliver(notice.pk))
    return True


def notice_deliver(notice_id: int) -> bool:
    """Email a notice not sent yet and record it as sent; return whether it went out.

    The row stays locked while the mail goes out, so the after-commit send and a retry running
    at the same moment never both send it. A failure is logged, never raised: a mail outage must
    not break the change that caused the notice.
    """

    try:
        with transaction.atomic():
            notice = (
                Notice.objects.select_for_update(skip_locked=True)
                .filter(pk=notice_id, sent_at__isnull=True)
                .first()
            )
            if notice is None:
                return False  # sent already, or being sent by another process
            try:
                send_mail(notice.subject, notice.body, None, notice.recipients)
            except Exception:  # noqa: BLE001  any mail failure: the next run tries again
                logger.warning(
                    "Could not send the %s notice for %s %s; not recorded as sent (the next "
                    "send_credential_notices run sends it again)",
                    notice.notice_type,
                    notice.kind,
                    notice.object_id,
                    exc_info=True,
                )
                return False
            Notice.objects.filter(pk=notice.pk).update(sent_at=timezone.now())
            return True
    except DatabaseError:
        logger.warning("Could not send the notice %s (database error)", notice_id, exc_info=True)
        return False


def notices_retry(*, now: datetime | None = None) -> int:
    """Send the notices of the last NOTICE_RETRY_FOR that the mail server has not taken yet;
    return how many went out. Each goes with the message and recipients it was due with."""

    now = now or timezone.now()
    pending = Notice.objects.filter(
        sent_at__isnull=True,
        created_at__gte=now - NOTICE_RETRY_FOR,
        created_at__lte=now - NOTICE_RETRY_AFTER,
    )
    return sum(notice_deliver(pk) for pk in list(pending.order_by("pk").values_list("pk", flat=True)))


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
    sent = notices_retry(now=now)
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
                with transaction.atomic():
                    # The rows were read when the run began, and a run may take minutes: a
                    # credential revoked, rotated or restored since gets no notice it no longer
                    # warrants. Locked until the notice is recorded, as a change would lock it.
                    credential = (
                        kind.model.objects.select_for_update(of=("self",))
                        .select_related("organization", "owner")
                        .filter(pk=values["id"])
                        .first()
                    )
                    if (
                        credential is None
                        or not kind.inventory_queryset(None).filter(condition, pk=credential.pk).exists()
                    ):
                        continue
                    org_id = credential.organization_id
                    if org_id not in managers:
                        managers[org_id] = [u.email for u in managers_of(credential.organization)]
                    recipients = (
                        list(managers[org_id])
                        if notice_type == "orphaned"
                        else notice_recipients(credential, managers=managers[org_id])
                    )
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
