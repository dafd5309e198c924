"""Workload identity federation: trusts in external issuers whose tokens authenticate an application."""
