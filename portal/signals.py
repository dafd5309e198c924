"""Signals portal sends, so that the apps built on it act on its changes without portal importing them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent inside the transaction that removes a member, before the membership row is deleted, with
#: `organization`, `user` (the member leaving) and `actor`. credentials.governance orphans the
#: member's credentials here (docs/governance.md); a receiver that raises rolls the removal back.
member_removed = Signal()
