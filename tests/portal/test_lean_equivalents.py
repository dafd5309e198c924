"""The lean chain's drop-in layers answer what the stock layers answer (portal.infra.lean.EQUIVALENTS).

`portal.infra.csp.CSPMiddleware` builds django-csp's header once per process when nothing
varies it per response; every case django-csp varies (nonce, decorators, exemptions, report-only,
excluded prefixes, DEBUG error pages, a header already set, settings changed) must come out the same.
`portal.infra.prometheus.PrometheusAfterMiddleware` must count into the very children
django-prometheus would, and `portal.api.negotiation.MachineNegotiation` (the machine views'
content negotiation) must choose what DRF chooses.
"""

from __future__ import annotations

import pytest
from csp.exceptions import CSPNonceError
from csp.middleware import CSPMiddleware as StockCSPMiddleware
from django.http import HttpResponse, HttpResponseNotFound
from django.test import Client, RequestFactory
from django.utils.module_loading import import_string
from django_prometheus.middleware import Metrics
from prometheus_client import REGISTRY
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request

from portal.api.negotiation import MachineNegotiation
from portal.api.whoami import WhoAmIView
from portal.infra import lean, prometheus
from portal.infra.csp import CSPMiddleware

HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")


def _answer(middleware_class, *, path="/api/v1/whoami", respond=None, nonce=None):
    request = RequestFactory().get(path)

    def view(req):
        if nonce:
            req._csp_nonce = nonce  # what evaluating request.csp_nonce stores
        return respond() if respond else HttpResponse(b"{}", content_type="application/json")

    middleware = middleware_class(view)
    response = middleware(request)
    return request, {name: response.get(name) for name in HEADERS}


def _same(**kwargs):
    _, stock = _answer(StockCSPMiddleware, **kwargs)
    _, lean_answer = _answer(CSPMiddleware, **kwargs)
    assert lean_answer == stock
    return stock


def _with(**attributes):
    def respond():
        response = HttpResponse(b"{}", content_type="application/json")
        for name, value in attributes.items():
            setattr(response, name, value)
        return response

    return respond


def test_the_lean_chain_builds_the_drop_in_in_the_stock_layers_place():
    layers = lean.lean_middleware()  # the list itself is unchanged
    for stock, drop_in in lean.EQUIVALENTS.items():
        assert stock in layers
        assert issubclass(import_string(drop_in), import_string(stock))


def test_a_plain_answer_carries_the_same_policy():
    headers = _same()
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Content-Security-Policy-Report-Only"] is None


def test_the_cases_django_csp_varies_come_out_the_same(settings):
    _same(nonce="c29tZS1ub25jZQ==")
    _same(respond=_with(_csp_update={"img-src": ["https://img.example"]}))
    _same(respond=_with(_csp_replace={"script-src": ["'self'", "https://cdn.example"]}))
    _same(respond=_with(_csp_config={"default-src": ["'none'"]}))
    _same(respond=_with(_csp_exempt=True))
    _same(respond=_with(_csp_exempt_ro=True))
    _same(respond=_with(_csp_update_ro={"img-src": ["https://img.example"]}))

    def preset():
        response = HttpResponse(b"{}")
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    assert _same(respond=preset)["Content-Security-Policy"] == "default-src 'none'"


def test_settings_changes_are_followed(settings):
    before, configured = _same(), settings.CONTENT_SECURITY_POLICY
    settings.CONTENT_SECURITY_POLICY = {
        "EXCLUDE_URL_PREFIXES": ["/api/"],
        "DIRECTIVES": {"default-src": ["'self'"]},
    }
    assert _same()["Content-Security-Policy"] is None  # excluded prefix
    assert _same(path="/dashboard/")["Content-Security-Policy"] == "default-src 'self'"
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert _same(path="/dashboard/")["Content-Security-Policy-Report-Only"] == "default-src 'none'"
    del settings.CONTENT_SECURITY_POLICY_REPORT_ONLY
    settings.CONTENT_SECURITY_POLICY = None
    assert _same() == {name: None for name in HEADERS}
    settings.CONTENT_SECURITY_POLICY = configured
    assert _same() == before


def test_debug_error_pages_are_left_alone_as_by_django_csp(settings):
    settings.DEBUG = True
    assert _same(respond=lambda: HttpResponseNotFound(b"x")) == {name: None for name in HEADERS}
    settings.DEBUG = False
    assert _same(respond=lambda: HttpResponseNotFound(b"x"))["Content-Security-Policy"]


def test_asking_for_the_nonce_after_the_header_is_written_is_still_an_error():
    for middleware_class in (StockCSPMiddleware, CSPMiddleware):
        request, _ = _answer(middleware_class)
        with pytest.raises(CSPNonceError):
            str(request.csp_nonce)


@pytest.mark.django_db
def test_whoami_answers_the_same_headers_on_the_lean_and_the_full_chain(make_key):
    _row, plaintext = make_key()
    lean_client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    full_client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    full_client.cookies["anything"] = "1"  # any cookie: the full chain
    on_lean, on_full = lean_client.get("/api/v1/whoami"), full_client.get("/api/v1/whoami")
    assert not hasattr(on_lean.wsgi_request, "session") and hasattr(on_full.wsgi_request, "session")
    assert on_lean.content == on_full.content
    for name in (*HEADERS, "Content-Type", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert on_lean.get(name) == on_full.get(name), name


def test_the_prometheus_layer_counts_into_the_same_children():
    metrics = Metrics.get_instance()
    for metric, labels in (
        (metrics.responses_by_status, {"status": "200"}),
        (metrics.responses_by_status_view_method, {"status": "401", "view": "api-whoami", "method": "GET"}),
        (metrics.requests_latency_by_view_method, {"view": "api-whoami", "method": "BREW"}),
    ):
        assert prometheus.bound(metric, **labels) is metric.labels(**labels)
        assert prometheus.bound(metric, **labels) is prometheus.bound(metric, **labels)


@pytest.mark.django_db
def test_a_lean_whoami_is_counted_as_by_django_prometheus(make_key):
    _row, plaintext = make_key()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    labels = {"status": "200", "view": "api-whoami", "method": "GET"}

    def counted():
        value = REGISTRY.get_sample_value("django_http_responses_total_by_status_view_method_total", labels)
        return value or 0.0

    before = counted()
    assert client.get("/api/v1/whoami").status_code == 200
    assert client.get("/api/v1/whoami").status_code == 200
    assert counted() == before + 2


ACCEPTS = (
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "text/html, application/json;q=0.9",
    "text/html",
    "",
    "application/json, " + "x/" + "y" * 300,
)


def _negotiate(negotiation, accept, query=""):
    extra = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get("/api/v1/whoami" + query, **extra))
    renderers = [JSONRenderer(), BrowsableAPIRenderer()]
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    return renderers.index(renderer), media_type


def test_machine_negotiation_chooses_what_drf_chooses():
    stock, machine = DefaultContentNegotiation(), MachineNegotiation()
    for query in ("", "?format=json", "?format=api"):
        for accept in ACCEPTS:
            expected = _negotiate(stock, accept, query)
            assert _negotiate(machine, accept, query) == expected, (accept, query)
            assert _negotiate(machine, accept, query) == expected, (accept, query)  # remembered


@pytest.mark.django_db
def test_whoami_answers_every_accept_header_as_with_drfs_negotiation(make_key, monkeypatch):
    _row, plaintext = make_key()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    def answers():
        seen = []
        for accept in ACCEPTS:
            extra = {} if accept is None else {"HTTP_ACCEPT": accept}
            for _ in range(2):
                answer = client.get("/api/v1/whoami", **extra)
                seen.append((accept, answer.status_code, answer.content, answer.get("Content-Type")))
        return seen

    machine = answers()
    monkeypatch.setattr(WhoAmIView, "content_negotiation_class", DefaultContentNegotiation)
    assert machine == answers()
    assert ("text/html", 406) in {(accept, status) for accept, status, _, _ in machine}
