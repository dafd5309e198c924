"""Which URLs an endpoint may have: HTTPS to public hosts; loopback over http only in development."""

from __future__ import annotations

import socket
import time

import pytest
from django.core.exceptions import ValidationError

from credentials.webhooks.destinations import parse_url, resolve
from credentials.webhooks.services import MAX_ENDPOINTS_PER_ORGANIZATION, webhook_endpoint_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = False


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "scheme"),
        ("ftp://hooks.example.com/x", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("hooks.example.com/x", "scheme"),
        ("not a url", "invalid"),
        ("", "scheme"),
        ("https://user:pass@hooks.example.com/x", "userinfo"),
        ("https://token@hooks.example.com/x", "userinfo"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https://hooks.example.com:99999/x", "invalid"),
        ("https://10.0.0.5/x", "private"),
        ("https://192.168.1.1/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://127.0.0.1/x", "private"),
        ("https://[::1]/x", "private"),
        ("https://[::ffff:10.0.0.1]/x", "private"),
        ("https://[fd00::1]/x", "private"),
        ("https://100.64.0.1/x", "private"),
        ("https://0.0.0.0/x", "private"),
        ("https://[::]/x", "private"),
        ("https://127.0.0.1./x", "private"),
        # Numeric IPv4 spellings the C resolver accepts (all 127.0.0.1 here).
        ("https://2130706433/x", "invalid"),
        ("https://0x7f000001/x", "invalid"),
        ("https://0177.0.0.1/x", "invalid"),
        ("https://127.1/x", "invalid"),
        ("https://0x7f.1/x", "invalid"),
        # IPv6 forms that carry or reach an IPv4 address, and non-global IPv6 space.
        ("https://[::7f00:1]/x", "private"),  # IPv4-compatible ::127.0.0.1
        ("https://[::ffff:0:7f00:1]/x", "private"),  # IPv4-translated
        ("https://[64:ff9b::a00:1]/x", "private"),  # NAT64 of 10.0.0.1
        ("https://[64:ff9b::a9fe:a9fe]/x", "private"),  # NAT64 of 169.254.169.254
        ("https://[64:ff9b:1::1]/x", "private"),  # local-use NAT64
        ("https://[2002:a00:1::1]/x", "private"),  # 6to4 of 10.0.0.1
        ("https://[2001::1]/x", "private"),  # Teredo
        ("https://[fec0::1]/x", "private"),  # site-local
        ("https://[fe80::1]/x", "private"),
        ("https://[ff02::1]/x", "private"),
        ("https://224.0.0.1/x", "private"),
        ("https://255.255.255.255/x", "private"),
        # IETF protocol assignments (192.0.0.192: a cloud metadata service) and IPv6 documentation:
        # `is_global` calls them global before CPython 3.11.9 / 3.12.4.
        ("https://192.0.0.192/x", "private"),
        ("https://192.0.0.8/x", "private"),
        ("https://[3fff::1]/x", "private"),
        ("http://127.0.0.1:8080/x", "scheme"),
        ("http://localhost/x", "scheme"),
        ("https://hooks.example.com/a b", "invalid"),
        ("https://hooks.example.com/x\r\nX-Injected: 1", "invalid"),
        ("https://hooks.example.com/\x00", "invalid"),
        ("https://bücher.example/x", "invalid"),
        ("https://hooks.example.com/café", "invalid"),
    ],
)
def test_refused_urls(production, url, code):
    with pytest.raises(ValidationError) as excinfo:
        parse_url(url)
    assert excinfo.value.code == code


def test_accepted_urls(production):
    d = parse_url("https://hooks.example.com/portal?source=identity")
    assert (d.scheme, d.host, d.port, d.path) == (
        "https",
        "hooks.example.com",
        443,
        "/portal?source=identity",
    )
    assert parse_url("https://93.184.215.14:8443").path == "/"
    assert parse_url("https://[2606:4700:4700::1111]/x").host == "2606:4700:4700::1111"
    assert parse_url("https://[64:ff9b::5db8:d70e]/x").port == 443  # NAT64 of a public address
    assert parse_url("https://1.2.3.4.nip.example/x").host == "1.2.3.4.nip.example"


def test_development_allows_http_to_loopback_only(settings):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    assert parse_url("http://127.0.0.1:8080/x").port == 8080
    assert parse_url("http://localhost/x").host == "localhost"
    with pytest.raises(ValidationError):
        parse_url("http://hooks.example.com/x")
    with pytest.raises(ValidationError):
        parse_url("http://10.0.0.5/x")


def test_resolution_refuses_loopback_and_unknown_names(production):
    with pytest.raises(ValidationError) as excinfo:
        resolve(parse_url("https://localhost/x"))
    assert excinfo.value.code == "private"
    with pytest.raises(ValidationError) as excinfo:
        resolve(parse_url("https://no-such-host.invalid/x"))
    assert excinfo.value.code == "dns"


def test_the_service_refuses_bad_urls_and_events(production, organization, owner):
    with pytest.raises(ValidationError) as excinfo:
        webhook_endpoint_create(
            organization=organization, url="http://x.example", event_types=["created"], actor=owner
        )
    assert "url" in excinfo.value.error_dict
    with pytest.raises(ValidationError) as excinfo:
        webhook_endpoint_create(
            organization=organization, url="https://x.example", event_types=[], actor=owner
        )
    assert "event_types" in excinfo.value.error_dict
    with pytest.raises(ValidationError):
        webhook_endpoint_create(
            organization=organization, url="https://x.example", event_types=["exploded"], actor=owner
        )
    with pytest.raises(ValidationError):
        webhook_endpoint_create(
            organization=organization,
            url="https://x.example/" + "a" * 500,
            event_types=["created"],
            actor=owner,
        )


def test_an_organisation_has_a_limited_number_of_endpoints(production, organization, owner):
    for i in range(MAX_ENDPOINTS_PER_ORGANIZATION):
        webhook_endpoint_create(
            organization=organization,
            url=f"https://hooks.example.com/{i}",
            event_types=["created"],
            actor=owner,
        )
    with pytest.raises(ValidationError, match="at most"):
        webhook_endpoint_create(
            organization=organization, url="https://hooks.example.com/x", event_types=["created"], actor=owner
        )


def _fake_dns(monkeypatch, answers: list[str], delay: float = 0.0):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "hooks.example.com":
            return real(host, port, *args, **kwargs)
        time.sleep(delay)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "answers",
    [
        ["93.184.215.14", "10.0.0.7"],  # one private address mixed in
        ["2606:4700:4700::1111", "::ffff:169.254.169.254"],
        ["64:ff9b::7f00:1"],  # DNS64 answer for 127.0.0.1
        ["fec0::1"],
        ["0.0.0.0"],
        ["192.0.0.192"],
    ],
)
def test_resolution_refuses_any_non_public_answer(production, monkeypatch, answers):
    _fake_dns(monkeypatch, answers)
    with pytest.raises(ValidationError) as excinfo:
        resolve(parse_url("https://hooks.example.com/x"))
    assert excinfo.value.code == "private"


def test_resolution_returns_every_public_answer_in_order(production, monkeypatch):
    _fake_dns(monkeypatch, ["2606:4700:4700::1111", "93.184.215.14", "93.184.215.14"])
    assert resolve(parse_url("https://hooks.example.com/x")) == ["2606:4700:4700::1111", "93.184.215.14"]


def test_a_slow_resolver_is_cut_off_at_the_timeout(production, settings, monkeypatch):
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 1
    _fake_dns(monkeypatch, ["93.184.215.14"], delay=4)
    started = time.monotonic()
    with pytest.raises(ValidationError) as excinfo:
        resolve(parse_url("https://hooks.example.com/x"))
    assert excinfo.value.code == "dns_timeout"
    assert time.monotonic() - started < 2
