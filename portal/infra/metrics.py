"""Prometheus metrics for token issuance and credential verification, and the guarded /metrics view.

Labels stay low-cardinality on purpose: an outcome from a fixed set and a credential type,
never an organisation, client id or key id.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import Counter, Histogram

from portal.infra.faults import is_database_outage
from portal.infra.net import client_ip

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

TOKEN_REQUESTS = Counter(
    "portal_oauth_token_requests",
    "Requests to /oauth/token by outcome (issued, an RFC 6749 error code, unavailable or error).",
    ["outcome"],
)
TOKEN_SECONDS = Histogram(
    "portal_oauth_token_seconds", "Time to answer /oauth/token.", ["outcome"], buckets=_LATENCY_BUCKETS
)
TOKEN_QUOTA_EXCEEDED = Counter(
    "portal_oauth_token_quota_exceeded",
    "Token requests past an application's issuance quota, by window (hour, day) and mode"
    " (enforce: refused with slow_down; log_only: issued anyway).",
    ["window", "mode"],
)
VERIFICATIONS = Counter(
    "portal_credential_verifications",
    "Machine credential verifications by credential type (api_key, access_token) and outcome.",
    ["credential_type", "outcome"],
)
VERIFICATION_SECONDS = Histogram(
    "portal_credential_verification_seconds",
    "Time to verify a machine credential.",
    ["credential_type"],
    buckets=_LATENCY_BUCKETS,
)

#: The RFC 6749 §5.2 error codes the token endpoint can answer (in the order the OpenAPI schema
#: lists them); anything else counts as "other".
TOKEN_ERROR_CODES = (
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "slow_down",
    "temporarily_unavailable",
    "server_error",
)
TOKEN_ERRORS = frozenset(TOKEN_ERROR_CODES)
#: Verification outcomes that may become label values; anything else counts as "invalid".
VERIFICATION_OUTCOMES = frozenset(
    {
        "valid",
        "malformed",
        "not_found",
        "revoked",
        "expired",
        "unknown_kid",
        "bad_signature",
        "wrong_audience",
        "wrong_issuer",
        "unavailable",
        "error",
    }
)


def _bounded(value: str, allowed: frozenset[str], default: str) -> str:
    return value if value in allowed else default


def observe_token_request(outcome: str, seconds: float) -> None:
    """Count one /oauth/token answer and its latency."""
    outcome = (
        outcome if outcome in ("issued", "unavailable", "error") else _bounded(outcome, TOKEN_ERRORS, "other")
    )
    TOKEN_REQUESTS.labels(outcome=outcome).inc()
    TOKEN_SECONDS.labels(outcome=outcome).observe(seconds)


def observe_token_quota_exceeded(window: str, mode: str) -> None:
    """Count one token request past an application's quota (`window`: hour or day)."""
    TOKEN_QUOTA_EXCEEDED.labels(window=window, mode=mode).inc()


def token_endpoint_metrics(view_func):
    """Decorate the token endpoint: count each answer by outcome and time it."""

    @functools.wraps(view_func)
    def wrapper(request, *args, **kwargs):
        started = time.perf_counter()
        outcome = "error"
        try:
            response = view_func(request, *args, **kwargs)
            outcome = "issued" if response.status_code == 200 else _oauth_error_code(response)
            return response
        except Exception as exc:
            outcome = "unavailable" if is_database_outage(exc) else "error"
            raise
        finally:
            observe_token_request(outcome, time.perf_counter() - started)

    return wrapper


def _oauth_error_code(response: HttpResponse) -> str:
    try:
        return str(json.loads(response.content).get("error", "other"))
    except (ValueError, AttributeError):
        return "other"


#: One recorder per (credential type, outcome): `labels()` cost more than the increment itself on
#: the verification hot path, and so did the checks `inc()` and `observe()` repeat on every call
#: (docs/performance.md). Label values come from fixed sets, so this stays small.
_verification_recorders: dict[tuple[str, str], Callable[[float], None]] = {}


def _recorder(credential_type: str, outcome: str) -> Callable[[float], None]:
    """Return the function that counts one verification with this outcome and observes its latency."""
    recorder = _verification_recorders.get((credential_type, outcome))
    if recorder is None:
        counter = VERIFICATIONS.labels(credential_type=credential_type, outcome=outcome)
        histogram = VERIFICATION_SECONDS.labels(credential_type=credential_type)
        recorder = _verification_recorders[(credential_type, outcome)] = _bound_recorder(counter, histogram)
    return recorder


def _bound_recorder(counter: Counter, histogram: Histogram) -> Callable[[float], None]:
    """Return `seconds -> None` that adds exactly what `counter.inc()` and `histogram.observe(seconds)` add.

    Bound to the children's value cells (the same cells, in-process or multiprocess, that
    `/metrics` reads): the count, the histogram's sum and the first bucket whose upper bound
    is at least `seconds` — the bucket `Histogram.observe` picks. Skipped per call: the label
    and sign checks that cannot fail for these children. Should prometheus_client's layout
    ever differ, the public calls are used instead.
    """
    try:
        count, total = counter._value.inc, histogram._sum.inc
        bounds = tuple(histogram._upper_bounds)
        buckets = tuple(bucket.inc for bucket in histogram._buckets)
    except AttributeError:
        count = total = None
    if count is None or total is None or len(bounds) != len(buckets) or bounds[-1] != float("inf"):

        def public(seconds: float) -> None:
            counter.inc()
            histogram.observe(seconds)

        return public

    def record(seconds: float) -> None:
        count(1)
        total(seconds)
        buckets[bisect_left(bounds, seconds)](1)

    return record


def observe_verification(credential_type: str, outcome: str, seconds: float) -> None:
    """Count one credential verification and its latency."""
    _recorder(credential_type, _bounded(outcome, VERIFICATION_OUTCOMES, "invalid"))(seconds)


def verification_metrics(
    credential_type: str,
    *,
    outcome_of: Callable[[Any], str],
    failure_of: Callable[[Exception], str | None] = lambda exc: None,
):
    """Decorate a verification function: count its outcome and time it.

    `outcome_of(result)` names the outcome of a return value; `failure_of(exc)` names the
    outcome of an exception that means "invalid credential" (None for anything else).
    """

    def decorator(func):
        #: Recorders by the outcome `outcome_of` named (bounded to the fixed set when first seen).
        recorders: dict[str, Callable[[float], None]] = {}
        clock = time.perf_counter

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            started = clock()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                outcome = failure_of(exc) or ("unavailable" if is_database_outage(exc) else "error")
                observe_verification(credential_type, outcome, clock() - started)
                raise
            outcome = outcome_of(result)
            recorder = recorders.get(outcome)
            if recorder is None:
                recorder = _recorder(credential_type, _bounded(outcome, VERIFICATION_OUTCOMES, "invalid"))
                if outcome in VERIFICATION_OUTCOMES:
                    recorders[outcome] = recorder
            recorder(clock() - started)
            return result

        return wrapper

    return decorator


# --- the /metrics endpoint ------------------------------------------------------------------


def _ip_allowed(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in settings.PORTAL_METRICS_ALLOWED_IPS:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _token_allowed(request: HttpRequest) -> bool:
    expected = settings.PORTAL_METRICS_TOKEN
    if not expected:
        return False
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve Prometheus metrics to an allowed client IP (PORTAL_METRICS_ALLOWED_IPS) or bearer token.

    Both are off by default, so a fresh deployment exposes nothing (see docs/operations.md).
    """
    if not (_token_allowed(request) or _ip_allowed(client_ip(request))):
        return JsonResponse(
            {"detail": "Metrics are restricted; see PORTAL_METRICS_ALLOWED_IPS and PORTAL_METRICS_TOKEN."},
            status=403,
        )
    return ExportToDjangoView(request)
