"""In-process benchmarks: key verification and JWT validation without HTTP (run by bench/run.py).

Usage (bench/run.py passes the environment of the server it benchmarks):
    BENCH_API_KEY=… python bench/inprocess.py peer --seconds 3
    BENCH_API_KEY=… BENCH_ACCESS_TOKEN=… python bench/inprocess.py portal --seconds 3 \
        [--jwks-url URL --issuer ISS --audience AUD]

Secrets come from the environment, never the command line (which ``ps`` shows).

Prints one line ``BENCH_JSON [rows…]``. A row's ``status`` is ``ok``, ``unavailable`` (the
project feature does not exist yet, or its call shape is not one this adapter knows) or
``error``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(name: str, call: Callable[[], object], *, seconds: float, **extra) -> dict:
    """Call ``call`` repeatedly for about ``seconds`` and return throughput and latency percentiles."""
    for _ in range(20):  # warm caches, connections and lazy imports
        call()
    samples: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    started = clock()
    while True:
        before = clock()
        call()
        after = clock()
        samples.append(after - before)
        if after >= deadline:
            break
    elapsed = clock() - started
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(len(samples) * p / 100))] / 1000

    return {
        "name": name,
        "status": "ok",
        "calls": len(samples),
        "ops_per_s": len(samples) / (elapsed / 1e9),
        "p50_us": pct(50),
        "p95_us": pct(95),
        "p99_us": pct(99),
        **extra,
    }


def unavailable(name: str, reason: str) -> dict:
    return {"name": name, "status": "unavailable", "reason": reason}


def error(name: str, reason: str) -> dict:
    return {"name": name, "status": "error", "reason": reason}


def rsa_token(*, issuer: str, audience: str) -> tuple[str, object]:
    """Return an RFC 9068-shaped RS256 token and the public key object that verifies it."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": "bench-client",
        "client_id": "bench-client",
        "iat": now,
        "exp": now + 3600,
        "jti": "bench-jti",
        "scope": "orders:read",
        "org": "acme",
    }
    token = jwt.encode(claims, private_key, algorithm="RS256", headers={"typ": "at+jwt", "kid": "bench"})
    return token, private_key.public_key()


def pyjwt_decoder(token: str, key: object, *, issuer: str, audience: str) -> Callable[[], object]:
    """Return a call that decodes ``token`` with raw PyJWT and a pre-loaded key (the baseline)."""
    import jwt

    def call():
        return jwt.decode(
            token,
            key,
            algorithms=["RS256", "ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )

    return call


# --- Peer side ----------------------------------------------------------------------------------


def run_peer(args: argparse.Namespace) -> list[dict]:
    """Measure djangorestframework-api-key's verification and raw PyJWT decode."""
    sys.path.insert(0, str(ROOT / "bench" / "peers"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "peers.settings"
    import django

    django.setup()
    from rest_framework_api_key.models import APIKey

    rows = []
    if not APIKey.objects.is_valid(args.api_key):
        return [error("drf_api_key", "the seeded API key does not verify")]
    rows.append(
        measure(
            "drf_api_key.is_valid (database path)",
            lambda: APIKey.objects.is_valid(args.api_key),
            seconds=args.seconds,
        )
    )
    rows.append(
        measure(
            "drf_api_key.get_from_key (database path)",
            lambda: APIKey.objects.get_from_key(args.api_key),
            seconds=args.seconds,
        )
    )
    issuer, audience = "https://peer.example", "https://peer.example/api"
    token, public_key = rsa_token(issuer=issuer, audience=audience)
    rows.append(
        measure(
            "pyjwt.decode RS256, pre-loaded key",
            pyjwt_decoder(token, public_key, issuer=issuer, audience=audience),
            seconds=args.seconds,
        )
    )
    return rows


# --- Project side -------------------------------------------------------------------------------

_KEY_PARAMS = ("key", "raw", "raw_key", "plaintext", "presented", "api_key", "value", "token")


def _call_with_key(func: Callable, key: str) -> Callable[[], object]:
    """Adapt ``func`` to a no-argument call, passing the key by the name its signature uses.

    The key goes to the first parameter with a key-like name, else to the first positional one.
    """
    params = inspect.signature(func).parameters
    kwargs: dict[str, object] = {}
    positional: list[object] = []
    named = any(name in _KEY_PARAMS for name in params)
    key_given = False
    for name, param in params.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        takes_key = name in _KEY_PARAMS if named else param.kind != param.KEYWORD_ONLY
        if not key_given and takes_key:
            if param.kind == param.KEYWORD_ONLY:
                kwargs[name] = key
            else:
                positional.append(key)
            key_given = True
        elif name in ("ip", "ip_address", "remote_addr", "client_ip"):
            kwargs[name] = "127.0.0.1"
        elif param.default is param.empty:
            raise TypeError(f"unknown required parameter {name!r}")
    if not key_given:
        raise TypeError("no parameter for the key")
    return lambda: func(*positional, **kwargs)


def _cache_disabled():
    from django.test import override_settings

    return override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}})


def bench_api_key_verify(args: argparse.Namespace) -> list[dict]:
    """Measure credentials.api_keys.verification.api_key_verify on a cache hit and on the database path."""
    names = ("api_key_verify, cache hit", "api_key_verify, database path")
    try:
        verification = importlib.import_module("credentials.api_keys.verification")
        api_key_verify = verification.api_key_verify
    except (ImportError, AttributeError):
        return [unavailable(n, "api_key_verify not available yet") for n in names]
    if not args.api_key:
        return [unavailable(n, "no API key (manage.py create_api_key not available yet)") for n in names]
    try:
        call = _call_with_key(api_key_verify, args.api_key)
        result = call()
    except Exception as exc:  # an unknown call shape must not stop the suite
        reason = f"adapter needed in bench/inprocess.py: {type(exc).__name__}"
        return [unavailable(n, reason) for n in names]
    # A result object may carry its verdict in `.valid` (and is truthy either way).
    if not getattr(result, "valid", result):
        return [error(n, "api_key_verify rejected the freshly created key") for n in names]

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows = []
    call()  # populate the cache
    with CaptureQueriesContext(connection) as queries:
        call()
    rows.append(measure(names[0], call, seconds=args.seconds, queries_per_call=len(queries)))
    with _cache_disabled():
        with CaptureQueriesContext(connection) as queries:
            call()
        if len(queries) == 0:
            rows.append(
                unavailable(
                    names[1],
                    "no query with Django's cache disabled: api_key_verify caches elsewhere; "
                    "teach bench/inprocess.py its cache bypass",
                )
            )
        else:
            rows.append(measure(names[1], call, seconds=args.seconds, queries_per_call=len(queries)))
    return rows


def _verifier_call(module, *, token: str, issuer: str, audience: str, jwks_url: str) -> Callable[[], object]:
    """Find the verifier's entry point in ``tokens.verifier`` and adapt it to a no-argument call."""
    values = {
        "issuer": issuer,
        "iss": issuer,
        "audience": audience,
        "aud": audience,
        "jwks_url": jwks_url,
        "jwks_uri": jwks_url,
    }

    def bind(func: Callable, extra: dict) -> tuple[list, dict]:
        kwargs, positional = {}, []
        for name, param in inspect.signature(func).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if name in ("token", "jwt", "access_token", "raw_token", "encoded"):
                positional.append(token) if param.kind != param.KEYWORD_ONLY else kwargs.update({name: token})
            elif name in extra:
                kwargs[name] = extra[name]
            elif param.default is param.empty:
                raise TypeError(f"unknown required parameter {name!r}")
        return positional, kwargs

    classes = [
        obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and name.endswith("Verifier") and obj.__module__ == module.__name__
    ]
    for cls in classes:
        init_params = inspect.signature(cls).parameters
        init_kwargs = {k: v for k, v in values.items() if k in init_params}
        verifier = cls(**init_kwargs)
        for method_name in ("verify", "verify_token", "decode", "validate", "__call__"):
            method = getattr(verifier, method_name, None)
            if callable(method) and (method_name != "__call__" or "__call__" in vars(cls)):
                positional, kwargs = bind(method, values)
                return lambda m=method, p=positional, k=kwargs: m(*p, **k)
    for func_name in ("verify_access_token", "verify_token", "verify", "decode_access_token"):
        func = getattr(module, func_name, None)
        if callable(func):
            positional, kwargs = bind(func, values)
            return lambda f=func, p=positional, k=kwargs: f(*p, **k)
    raise LookupError("no Verifier class or verify function")


def bench_token_verifier(args: argparse.Namespace) -> list[dict]:
    """Measure tokens.verifier on a cached JWKS against raw PyJWT on the same token."""
    name, baseline = "tokens.verifier, cached JWKS", "pyjwt.decode of the same token, pre-loaded key"
    try:
        module = importlib.import_module("tokens.verifier")
    except ImportError:
        return [unavailable(name, "tokens.verifier not available yet")]
    if not args.access_token:
        return [unavailable(name, "no access token (POST /oauth/token not available yet)")]
    try:
        call = _verifier_call(
            module,
            token=args.access_token,
            issuer=args.issuer,
            audience=args.audience,
            jwks_url=args.jwks_url,
        )
        claims = call()
    except Exception as exc:  # an unknown call shape must not stop the suite
        return [unavailable(name, f"adapter needed in bench/inprocess.py: {type(exc).__name__}: {exc}")]
    if not claims:
        return [error(name, "the verifier rejected a token the portal just issued")]

    import jwt

    signing_key = jwt.PyJWKClient(args.jwks_url).get_signing_key_from_jwt(args.access_token).key
    return [
        measure(name, call, seconds=args.seconds),
        measure(
            baseline,
            pyjwt_decoder(args.access_token, signing_key, issuer=args.issuer, audience=args.audience),
            seconds=args.seconds,
        ),
    ]


def run_portal(args: argparse.Namespace) -> list[dict]:
    """Measure Identity Portal's verification paths, skipping what has not landed yet."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    import django

    django.setup()
    return bench_api_key_verify(args) + bench_token_verifier(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["peer", "portal"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--jwks-url", default="")
    parser.add_argument("--issuer", default="")
    parser.add_argument("--audience", default="")
    args = parser.parse_args()
    args.api_key = os.environ.get("BENCH_API_KEY", "")
    args.access_token = os.environ.get("BENCH_ACCESS_TOKEN", "")
    rows = run_peer(args) if args.side == "peer" else run_portal(args)
    print("BENCH_JSON " + json.dumps(rows))


if __name__ == "__main__":
    main()
