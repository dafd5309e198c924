"""The one function that writes audit events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models

from portal.infra.request_context import current_request_context
from portal.models import AuditEvent, Organization, User

#: Called as `listener(event, target)` right after each audit row is written, inside the same
#: transaction (a rollback undoes whatever they write too). Apps register theirs from
#: AppConfig.ready, so `portal` never imports them (credentials.webhooks derives its events here).
AuditListener = Callable[[AuditEvent, models.Model | None], None]
_LISTENERS: dict[str, AuditListener] = {}


def audit_listener_register(name: str, listener: AuditListener) -> None:
    """Register (or replace) a listener called for every audit event written."""
    _LISTENERS[name] = listener


def audit_log(
    *,
    action: str,
    actor: User | None,
    organization: Organization | None,
    target: models.Model | None = None,
    target_label: str | None = None,
    extra: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit event in the caller's transaction, so a rollback removes it too.

    IP address and user agent come from the request being served (if any). Callers must
    never put secret material in `extra`.
    """
    context = current_request_context()
    actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    event = AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor.email if actor else "system",
        organization=organization,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(
            target_label if target_label is not None else str(target) if target is not None else ""
        )[:255],
        ip_address=context.ip if context else None,
        user_agent=context.user_agent if context else "",
        extra=extra or {},
    )
    for listener in _LISTENERS.values():
        listener(event, target)
    return event
