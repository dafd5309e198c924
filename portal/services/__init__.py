"""Writes for the portal room: audit, memberships, invitations."""
