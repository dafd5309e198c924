"""Proxy and metrics address lists that cannot be read fail `manage.py check` (never dropped in silence)."""

from __future__ import annotations

from django.core import checks
from django.test import RequestFactory, override_settings

from portal.infra.net import client_ip


def _check_messages() -> str:
    return " ".join(f"{m.id} {m.msg}" for m in checks.run_checks(include_deployment_checks=True))


def test_a_proxy_network_in_trusted_proxies_is_honoured_or_refused_at_start_up():
    """PORTAL_TRUSTED_PROXIES=10.0.0.0/24 (natural behind a load-balancer pool or Kubernetes ingress) is
    dropped by net._trusted without a word: every client then shares the proxy's address and its per-IP
    limits (20 failed logins per 15 min locks everybody out). Either honour networks or fail a check."""
    with override_settings(PORTAL_TRUSTED_PROXIES=["127.0.0.0/8"]):
        request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
        honoured = client_ip(request) == "203.0.113.9"
        reported = "PORTAL_TRUSTED_PROXIES" in _check_messages()
    assert honoured or reported


def test_an_unreadable_metrics_allowlist_entry_is_reported():
    """A typo in PORTAL_METRICS_ALLOWED_IPS (metrics._ip_allowed skips it) leaves Prometheus with 403s and
    nothing says why; a system check should name it."""
    with override_settings(PORTAL_METRICS_ALLOWED_IPS=["10.0.0.300"]):
        assert "PORTAL_METRICS_ALLOWED_IPS" in _check_messages()
