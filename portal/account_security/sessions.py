"""End a person's sessions from outside them (staff in the admin)."""

from __future__ import annotations

from allauth.usersessions.adapter import get_adapter
from allauth.usersessions.models import UserSession
from django.db import transaction

from portal.account_security.events import sessions_ended
from portal.models import User


@transaction.atomic
def user_sessions_end_all(*, user: User, actor: User, via: str) -> int:
    """End every session of `user` server-side and return how many there were."""
    user_sessions = list(UserSession.objects.filter(user=user))
    get_adapter().end_sessions(user_sessions)
    sessions_ended(actor=actor, user=user, count=len(user_sessions), via=via)
    return len(user_sessions)
