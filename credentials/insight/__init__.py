"""Usage insight per credential, both kinds: recent client IPs, recent denials, scopes used.

Recorded with the usage counters (credentials.usage) without a database write per request,
rolled up into three small tables, shown on each credential's page. See docs/usage.md.
"""
