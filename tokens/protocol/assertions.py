"""Check `private_key_jwt` client assertions (RFC 7523 §2.2 and §3, OpenID Connect Core §9).

An application that authenticates with `private_key_jwt` holds no secret: it registers one
or two public keys (`ClientPublicKey`) and proves itself with a short-lived JWT signed by
its private key, sent as `client_assertion` with `client_assertion_type`
`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`. This module parses the public
keys people paste (JWK or PEM, public members only) and verifies assertions.

What a valid assertion is here:
- signed by a live registered key of the application, with that key's algorithm (the
  header's `alg` picks nothing: PyJWT is given exactly the key's one algorithm, so `none`
  and HS256-with-the-public-key fail);
- `iss` = `sub` = the client id (a `client_id` parameter, if sent, must match);
- `aud` (string or list) names the issuer, the token endpoint, or the endpoint called;
- `exp` is required and at most an hour ahead; the assertion is fresh: signed (`iat`) at
  most five minutes ago, or, without `iat`, expiring within five minutes; `nbf` is honoured;
  30 seconds of clock leeway;
- `jti` is required and is accepted once: it is stored with `cache.add` until the assertion
  can no longer be accepted, so replays are refused on every app server sharing the cache.
  `ResilientRedisCache.add` answers False while Redis is down, so an outage refuses
  assertions (fails closed) instead of letting replays through.

Every failure is the same `invalid_client` to the caller; the reason goes to the log
(never the assertion itself). For usage, an assertion a live key signed that is not acceptable
(stale, replayed, wrong audience) counts `invalid_secret` for its client; one that no live key
signed is told apart after the response (`tokens.protocol.client_outcomes`).

Parsed key objects are not cached: building one from the
stored JWK costs ~13 µs (RSA) to ~23 µs (EC) against ~70–140 µs for the signature check,
measured on the 2-core machine, so a cache would save nothing worth its invalidation.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable

import jwt
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from credentials import usage
from portal.principal import MAX_CREDENTIAL_LENGTH
from portal.selectors import owner_role_subquery
from tokens.federation import trust
from tokens.models import ClientPublicKey, FederatedIdentity, M2MApplication
from tokens.protocol import client_outcomes

log = logging.getLogger(__name__)

#: RFC 7523 §2.2: the value of `client_assertion_type`.
JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The explicit allowlist (RFC 8725 §3.1), also advertised in the metadata.
ALLOWED_ALGORITHMS = tuple(ClientPublicKey.Algorithm.values)
#: An assertion is accepted at most this long after it was signed (`iat`), or, without `iat`,
#: only when it expires within this long.
MAX_ASSERTION_AGE = 300
#: `exp` may never be further ahead than this (authlib's default is one hour).
MAX_ASSERTION_EXPIRY = 3600
LEEWAY = 30
REPLAY_CACHE_PREFIX = "tokens:assertion-jti:"
# last_used_at is written at most this often per key (batched after the response, credentials.last_used).
LAST_USED_RESOLUTION_SECONDS = 60


# --- registering a key ------------------------------------------------------------------------


# --- checking an assertion --------------------------------------------------------------------


class AssertionRefused(Exception):  # noqa: N818 - reads better at call sites
    """The assertion does not authenticate the client; the message is for the log only.

    For usage: `known` when a live key of the client signed it (counted `invalid_secret` at
    once); else a `client_id` when no live key of the client it claims signed it (told apart
    after the response by `client_outcomes.assertion_refused`); else nothing to count.
    """

    def __init__(
        self, message: str, *, client_id: str = "", organization_id: int | None = None, known: bool = False
    ):
        super().__init__(message)
        self.client_id = client_id
        self.organization_id = organization_id
        self.known = known


def accepted_audiences(endpoint: str | None = None) -> list[str]:
    """Return the `aud` values accepted: the issuer, the token endpoint and the endpoint called."""
    issuer = settings.PORTAL_ISSUER
    audiences = [issuer, issuer + "/", issuer + reverse("oauth-token")]
    if endpoint:
        audiences.append(issuer + reverse(endpoint))
    return audiences


def _is_client_id(value) -> bool:
    """Return whether `value` can be a client id: 1–255 VSCHARs (RFC 6749 Appendix A.1, printable ASCII).

    So an unverified `sub` never reaches a query, a cache key or a log line with a lone
    surrogate (which no encoder accepts) or a line break (which would forge log lines).
    """
    return isinstance(value, str) and 0 < len(value) <= 255 and all(" " <= c <= "~" for c in value)


def _is_jti(value) -> bool:
    """Return whether `value` is a usable `jti`: a non-empty string of at most 255 encodable characters."""
    if not isinstance(value, str) or not value or len(value) > 255:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, from a `\ud800` escape in the JSON
        return False
    return True


def _timestamp(value) -> float | None:
    """Return a NumericDate claim as a finite float, or None (a bool, a string, 1e400, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return value if math.isfinite(value) else None


def claimed_client_id(assertion: str) -> str:
    """Return the `sub` an assertion claims, unverified (for rate limits and logs only)."""
    if not assertion or len(assertion) > MAX_CREDENTIAL_LENGTH:
        return ""
    try:
        sub = jwt.decode(assertion, options={"verify_signature": False}).get("sub")
    except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError):
        return ""
    return sub if _is_client_id(sub) else ""


def _live_keys(client_id: str) -> list[ClientPublicKey]:
    now = timezone.now()
    keys = list(
        ClientPublicKey.objects.select_related("application__organization")
        .annotate(owner_role=owner_role_subquery("application__owner_id", "application__organization_id"))
        .filter(
            application__client_id=client_id,
            application__status=M2MApplication.Status.ACTIVE,
            application__token_endpoint_auth_method=M2MApplication.AuthMethod.PRIVATE_KEY_JWT,
        )
        .live(now)
    )
    for key in keys:
        # The owner's current role bounds the token's scopes (portal.authz); read in the same query.
        key.application.owner_role = key.owner_role
    return keys


def _candidates(keys: list[ClientPublicKey], header: dict) -> Iterable[ClientPublicKey]:
    kid = header.get("kid")
    by_kid = [key for key in keys if key.kid == kid]
    # A client may sign with its own kid (or none): then every live key is tried (at most two).
    return by_kid or keys


def _decode(assertion: str, key: ClientPublicKey, client_id: str, endpoint: str | None) -> dict:
    return jwt.decode(
        assertion,
        jwt.PyJWK(key.public_jwk, algorithm=key.algorithm).key,
        algorithms=[key.algorithm],
        audience=accepted_audiences(endpoint),
        issuer=client_id,
        leeway=LEEWAY,
        options={"require": ["iss", "sub", "aud", "exp", "jti"], "strict_aud": False},
    )


def _check_lifetime(claims: dict, now: float) -> float:
    """Check that the assertion is short-lived and fresh; return when it stops being acceptable."""
    exp = _timestamp(claims["exp"])
    if exp is None or exp - now > MAX_ASSERTION_EXPIRY + LEEWAY:
        raise AssertionRefused("exp too far in the future")
    if claims.get("iat") is None:
        if exp - now > MAX_ASSERTION_AGE + LEEWAY:
            raise AssertionRefused("no iat and exp too far in the future")
        return exp + LEEWAY
    iat = _timestamp(claims["iat"])
    if iat is None or now - iat > MAX_ASSERTION_AGE + LEEWAY:
        raise AssertionRefused("iat too old")
    return min(exp, iat + MAX_ASSERTION_AGE) + LEEWAY


def _first_use(client_id: str, jti: str, until: float, now: float) -> bool:
    """Record the `jti` until the assertion expires; return False if it was seen (or the cache is down)."""
    digest = hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()
    timeout = max(1, math.ceil(until - now))
    return bool(cache.add(REPLAY_CACHE_PREFIX + digest, 1, timeout=timeout))


def _verify(
    assertion: str, *, client_id: str | None, endpoint: str | None
) -> tuple[M2MApplication, ClientPublicKey]:
    if not assertion or len(assertion) > MAX_CREDENTIAL_LENGTH or assertion.count(".") != 2:
        raise AssertionRefused("not a compact JWS")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise AssertionRefused("unreadable") from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise AssertionRefused(f"algorithm {str(header.get('alg'))[:16]!r} not allowed")
    sub, iss = unverified.get("sub"), unverified.get("iss")
    if not _is_client_id(sub):
        raise AssertionRefused("no usable sub")
    if iss != sub:
        raise AssertionRefused("iss differs from sub")
    if client_id and client_id != sub:
        raise AssertionRefused("client_id parameter differs from sub")
    keys = _live_keys(sub)
    if not keys:
        # Unknown, or known but suspended, revoked, or signing with a dead key: told apart after the response.
        raise AssertionRefused("no live key for this client", client_id=sub)
    claims = key = None
    for candidate in _candidates(keys, header):
        try:
            claims = _decode(assertion, candidate, sub, endpoint)
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            continue  # not this key; try the other one
        except jwt.PyJWTError as exc:
            # Signed by this key (PyJWT checks the signature first), but not acceptable.
            raise _refused_by(type(exc).__name__, candidate) from None
        key = candidate
        break
    if key is None or claims is None:
        raise AssertionRefused("signature matches no live key", client_id=sub)
    if claims.get("sub") != sub:
        raise _refused_by("sub mismatch", key)
    jti = claims.get("jti")
    if not _is_jti(jti):
        raise _refused_by("no usable jti", key)
    now = time.time()
    try:
        until = _check_lifetime(claims, now)
    except AssertionRefused as exc:
        raise _refused_by(str(exc), key) from None
    if not _first_use(sub, jti, until, now):
        raise _refused_by("jti replayed (or the replay cache is unavailable)", key)
    return key.application, key


def _refused_by(message: str, key: ClientPublicKey) -> AssertionRefused:
    """Return the refusal of an assertion a live key signed: its client is known (`invalid_secret`)."""
    application = key.application
    return AssertionRefused(
        message, client_id=application.client_id, organization_id=application.organization_id, known=True
    )


def authenticate_assertion(
    assertion: str, *, client_id: str | None = None, endpoint: str | None = None
) -> tuple[M2MApplication, ClientPublicKey] | None:
    """Return the application and the key that signed a valid assertion, else None (reason logged).

    `client_id` is the request's `client_id` parameter, if any; `endpoint` the URL name of the
    endpoint called, also accepted as `aud`.
    """
    try:
        application, key = _verify(assertion, client_id=client_id, endpoint=endpoint)
    except AssertionRefused as exc:
        log.info("client assertion refused: %s (claimed client %s)", exc, claimed_client_id(assertion) or "-")
        if exc.known:
            usage.record("m2m_app", exc.client_id, exc.organization_id, "invalid_secret")
        elif exc.client_id:
            client_outcomes.assertion_refused(exc.client_id, assertion)
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        # Written by `tokens.protocol.oauth.record_client_use` once the request succeeds, as
        # for a secret: a request refused for its address, rate or scopes is not a use.
        key.portal_use_due_at = now
    return application, key


def assertion_parameters(params) -> tuple[str, str] | None:
    """Return `(client_assertion_type, client_assertion)` if the request sends either, else None."""
    assertion_type = params.get("client_assertion_type") or ""
    assertion = params.get("client_assertion") or ""
    if not assertion_type and not assertion:
        return None
    return assertion_type, assertion


def authenticate_assertion_parameters(
    assertion_type: str, assertion: str, *, client_id: str | None, has_secret: bool, endpoint: str | None
) -> tuple[M2MApplication, ClientPublicKey | FederatedIdentity] | None:
    """Authenticate a request sending assertion parameters; with a secret too it fails (RFC 6749 §2.3).

    A self-issued assertion is private_key_jwt; another issuer's token is workload identity
    federation (`tokens.federation.trust`).
    """
    if has_secret:
        log.info("client assertion refused: sent together with a client secret")
        return None
    if assertion_type != JWT_BEARER_ASSERTION_TYPE:
        log.info("client assertion refused: unsupported client_assertion_type")
        return None
    # Another issuer's token (workload identity federation) authenticates at the token endpoint only.
    if trust.is_external(assertion):
        if endpoint != "oauth-token":
            log.info("federated assertion refused: accepted at the token endpoint only")
            return None
        return trust.authenticate(assertion, client_id=client_id)
    return authenticate_assertion(assertion, client_id=client_id, endpoint=endpoint)
