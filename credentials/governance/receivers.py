"""Receivers of portal's signals: governance follows the membership changes portal announces."""

from __future__ import annotations

from credentials.governance.approvals import credential_requests_close_for_leaver
from credentials.governance.ownership import credentials_orphan


def orphan_on_member_removed(sender, *, organization, user, actor, **kwargs) -> None:
    """Mark a departing member's credentials orphaned and close their waiting requests, inside the
    removal's transaction."""
    credential_requests_close_for_leaver(organization=organization, user=user, actor=actor)
    credentials_orphan(organization=organization, user=user, actor=actor)
