"""Validate Identity Portal access tokens in any Python service: the one trusted pattern.

It needs no database and no Django: give it the issuer, the audience your service answers
to and the JWKS URL (or a key resolver), and call `verify(token)`. A service that serves one
organisation (a tenant's own API) pins it too: `organization="acme"` (its slug).

    from tokens.verifier import TokenVerifier, InvalidToken

    verifier = TokenVerifier(
        issuer="https://portal.example.com",
        audience="https://api.example.com",
        jwks_url="https://portal.example.com/.well-known/jwks.json",
        organization="acme",  # optional: only this organisation's tokens
    )
    try:
        claims = verifier.verify(token)
    except InvalidToken:
        ...  # answer 401 with WWW-Authenticate: Bearer

What it enforces (RFC 9068 and RFC 8725): header `typ` is `at+jwt`; `alg` is in an
allowlist of asymmetric algorithms (RS256, ES256 — never `none`, never HS*) and matches
the key; `kid` names a key from the JWKS (an unknown `kid` triggers at most one JWKS
refetch per `refetch_cooldown` seconds); the signature; `iss`; `aud`; `exp` and `nbf`
with a small leeway; the presence of `iss sub aud exp iat jti client_id scope`; and, when
pinned, that `org_id` names the organisation (or one of the organisations) given.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK, PyJWKClient

ALLOWED_ALGORITHMS = ("RS256", "ES256")
ACCEPTED_TYPES = ("at+jwt", "application/at+jwt")
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope")

KeyResolver = Callable[[str], "PyJWK | None"]

# base64url without padding (RFC 7515 §2), or with the 1–2 '=' some issuers append.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")

#: Why PyJWT refused a token, as InvalidToken says it (the first class that matches wins).
_DECODE_FAILURES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidSignatureError, "bad signature"),
)


def _decode_failure(exc: jwt.PyJWTError) -> str:
    """Return the reason to give for a token PyJWT refused."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return next((reason for cls, reason in _DECODE_FAILURES if isinstance(exc, cls)), "invalid token")


class InvalidToken(Exception):  # noqa: N818 - the name reads better at call sites
    """The token cannot be used. `reason` is a short, non-secret explanation for logs."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a valid access token, with convenient accessors."""

    claims: dict[str, Any]
    header: dict[str, Any]

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.claims.get("scope", "").split())

    @property
    def client_id(self) -> str:
        return self.claims["client_id"]

    @property
    def organization(self) -> str | None:
        return self.claims.get("org_id")

    @property
    def actor(self) -> str | None:
        """Return who acts for the subject (RFC 8693 `act.sub`): the gateway, for an exchanged API key."""
        act = self.claims.get("act")
        return act.get("sub") if isinstance(act, dict) else None


def _trusted_transport(url: str) -> bool:
    """Return whether keys fetched from `url` cannot be swapped on the way: https, or this machine.

    The keys decide every token: over plain http an on-path attacker serves their own and signs
    tokens the service accepts. Loopback http is for development (`make run`).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme == "https" or (scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS)


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class TokenVerifier:
    """Verify RFC 9068 access tokens from one issuer for one audience (or several), and one organisation."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Iterable[str] | None,
        jwks_url: str | None = None,
        key_resolver: KeyResolver | None = None,
        algorithms: Iterable[str] = ALLOWED_ALGORITHMS,
        leeway: int = 30,
        jwks_cache_seconds: int = 300,
        refetch_cooldown: float = 30,
        jwks_stale_if_error: float = 3600,
        timeout: float = 5,
        verify_audience: bool = True,
        organization: str | Iterable[str] | None = None,
    ):
        if (jwks_url is None) == (key_resolver is None):
            raise ValueError("Pass exactly one of jwks_url and key_resolver.")
        if jwks_url is not None and not _trusted_transport(jwks_url):
            raise ValueError(
                "Fetch the JWKS over https:// (plain http only from this machine: 127.0.0.1, ::1, localhost)."
            )
        self.algorithms = tuple(a for a in algorithms if a in ALLOWED_ALGORITHMS)
        if not self.algorithms:
            raise ValueError("Allow at least one of RS256 and ES256.")
        if verify_audience and not audience:
            raise ValueError("Say which audience this service answers to.")
        self.issuer = issuer.rstrip("/")
        self.audience = [audience] if isinstance(audience, str) else list(audience or [])
        self.verify_audience = verify_audience
        # The `org_id` (organisation slug) pin: an audience alone does not say which tenant a token is for.
        self.organizations = frozenset(
            [organization] if isinstance(organization, str) else organization or ()
        )
        if organization is not None and (
            not self.organizations or not all(isinstance(o, str) and o for o in self.organizations)
        ):
            raise ValueError("Pin at least one organisation slug, or pass organization=None.")
        self.leeway = leeway
        self._decode_options = {"require": list(REQUIRED_CLAIMS), "verify_aud": verify_audience}
        if jwks_url is not None:
            # PyJWKClient only fetches (no cache of its own): its cooldown starts at every fetch,
            # routine ones included, so a key rotated just after one was refused for up to the
            # cooldown, and it forgets a failed fetch, so an outage cost one fetch per token. The
            # resolver below keeps the set, and both clocks (_jwks_client_resolver).
            client = PyJWKClient(jwks_url, cache_jwk_set=False, timeout=timeout)
            self._resolve = self._jwks_client_resolver(
                client, jwks_cache_seconds, refetch_cooldown, jwks_stale_if_error
            )
        else:
            self._resolve = key_resolver

    @staticmethod
    def _jwks_client_resolver(
        client: PyJWKClient, lifespan: float, refetch_cooldown: float, stale_if_error: float
    ) -> KeyResolver:
        """Return a resolver over the JWKS at `client.uri`, with this module's own cache of it.

        - The set is fetched again once it is `lifespan` old (routine).
        - A `kid` the set lacks fetches it again at most once per `refetch_cooldown`, counted
          from those refetches only: a key rotated just after a routine fetch is found at once.
        - A fetch that fails (the portal down, an HTML page, no usable key) is not tried again
          for `refetch_cooldown`, routine or not: during an outage a service asks the portal at
          most once per cooldown, however many tokens (forged kids included) it sees. Meanwhile
          the last set fetched keeps answering for up to `stale_if_error` past its lifespan.
        """
        keys: list[dict[str, PyJWK]] = [{}]  # the last set fetched, replaced whole (readers take no lock)
        fetched_at = [-math.inf]  # the last fetch that succeeded
        refetched_at = [-math.inf]  # the last refetch for an unknown kid (tried)
        failed_at = [-math.inf]  # the last fetch that failed
        lock = threading.Lock()

        # What an unusable JWKS answer raises (an HTML page, no usable key, a read error): no key,
        # so the token is InvalidToken, as documented, and never another exception.
        unusable = (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError, OSError)

        def fetch(now: float) -> None:  # under the lock
            try:
                fresh = {key.key_id: key for key in client.get_signing_keys()}
            except unusable:
                failed_at[0] = now
                return
            keys[0] = fresh
            fetched_at[0] = now

        def resolve(kid: str) -> PyJWK | None:
            now, known = time.monotonic(), keys[0]
            if kid in known and now - fetched_at[0] < lifespan:
                return known[kid]
            with lock:  # one fetch at a time; the others then read what it found
                now = time.monotonic()
                may_fetch = now - failed_at[0] >= refetch_cooldown
                if now - fetched_at[0] >= lifespan:
                    if may_fetch:
                        fetch(now)
                elif kid not in keys[0] and may_fetch and now - refetched_at[0] >= refetch_cooldown:
                    refetched_at[0] = now
                    fetch(now)
                if now - fetched_at[0] < lifespan + stale_if_error:
                    return keys[0].get(kid)
                return None

        return resolve

    def verify(self, token: str | bytes) -> VerifiedToken:
        """Return the verified claims, or raise InvalidToken."""
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidToken("token is not ASCII") from None
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            raise InvalidToken("not a compact JWS")
        header = _unverified_header(token)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
            raise InvalidToken("typ is not at+jwt")
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no kid")
        key = self._resolve(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        key_alg = getattr(key, "algorithm_name", None)
        if key_alg != alg:
            raise InvalidToken("algorithm does not match the key")
        claims = self._claims_if_plainly_valid(token, header, key)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    audience=self.audience if self.verify_audience else None,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options=self._decode_options,
                )
            except jwt.PyJWTError as exc:
                raise InvalidToken(_decode_failure(exc)) from None
        if not isinstance(claims.get("scope"), str) or not isinstance(claims.get("client_id"), str):
            raise InvalidToken("malformed claims")
        if self.organizations:
            org_id = claims.get("org_id")
            if not isinstance(org_id, str) or org_id not in self.organizations:
                raise InvalidToken("wrong organization")
        return VerifiedToken(claims=claims, header=header)

    def _claims_if_plainly_valid(self, token: str, header: dict[str, Any], key: Any) -> dict[str, Any] | None:
        """Return the claims of a token `jwt.decode` would accept, checked once; None to let it decide.

        `jwt.decode` would parse the header again (the checks above already did), test every
        character of the payload and signature against the base64url alphabet one at a time
        in Python, and then check the claims. Here the same rules run once, on segments
        already split: the same strict base64url decoding (alphabet, padding, canonical last
        character), the signature checked by the key's own PyJWT algorithm object
        (`PyJWK.Algorithm.verify`, PyJWT's public interface for algorithms, as `jwt.decode`
        does), then the claims as `jwt.decode` checks them with this verifier's options.

        Only an outcome both agree on is answered here: the claims of a token every check
        accepts, or "bad signature" for well-formed segments whose signature fails (PyJWT
        checks the signature before any claim). Everything else — a segment PyJWT might read
        differently, a `crit` or `b64` header, a key PyJWT would warn about, any claim that
        fails — returns None, and `jwt.decode` gives the verdict and its reason exactly as
        before. The tests compare both paths on the same tokens (tests/tokens/test_verifier.py).
        """
        if not isinstance(key, PyJWK) or "crit" in header or "b64" in header:
            return None
        algorithm = key.Algorithm
        try:
            public_key = algorithm.prepare_key(key.key)
        except (jwt.PyJWTError, TypeError, ValueError):
            return None
        if algorithm.check_key_length(public_key) is not None:
            return None  # jwt.decode warns about a short key: let it
        header_segment, payload_segment, signature_segment = token.split(".")
        payload = _segment_bytes(payload_segment)
        signature = _segment_bytes(signature_segment)
        if payload is None or signature is None:
            return None
        signing_input = token[: len(header_segment) + 1 + len(payload_segment)].encode()
        if not algorithm.verify(signing_input, public_key, signature):
            raise InvalidToken("bad signature")
        try:
            claims = json.loads(payload)
        except (ValueError, RecursionError):
            return None
        if not isinstance(claims, dict) or not self._claims_accepted(claims):
            return None
        return claims

    def _claims_accepted(self, claims: dict[str, Any]) -> bool:
        """Return whether `jwt.decode` with this verifier's options would accept these claims.

        PyJWT 2's checks, in its order: required claims present (not None); `iat` and `nbf`
        not in the future and `exp` not past (integers, within the leeway); `iss` equal to the
        issuer; `aud` a non-empty string or list of strings naming one of the audiences (when
        checked); `sub` and `jti` strings.
        """
        for claim in REQUIRED_CLAIMS:
            if claims.get(claim) is None:
                return False
        leeway = self.leeway.total_seconds() if isinstance(self.leeway, timedelta) else self.leeway
        now = time.time()
        try:
            if int(claims["iat"]) > now + leeway:
                return False
            if "nbf" in claims and int(claims["nbf"]) > now + leeway:
                return False
            if int(claims["exp"]) <= now - leeway:
                return False
        except (ValueError, TypeError, OverflowError):
            return False
        if not isinstance(claims["iss"], str) or claims["iss"] != self.issuer:
            return False
        if self.verify_audience:
            audiences = claims["aud"]
            if not audiences:
                return False
            if isinstance(audiences, str):
                audiences = [audiences]
            if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
                return False
            if not any(a in audiences for a in self.audience):
                return False
        return isinstance(claims["sub"], str) and isinstance(claims["jti"], str)


#: Headers already decoded, by their segment: every token one signing key issues carries the
#: same header, so each distinct one is parsed and checked once. Bounded (a caller cannot grow
#: it without limit by sending headers of its own); callers get a copy.
_HEADERS: dict[str, dict[str, Any]] = {}
_HEADERS_MAX = 256


def _unverified_header(token: str) -> dict[str, Any]:
    """Decode only the JOSE header, as strictly as PyJWT does; `jwt.decode` then parses it again.

    `jwt.get_unverified_header` would decode and validate all three segments, which
    `jwt.decode` does once more; the header alone is all the checks before it need.
    """
    segment = token.partition(".")[0]
    header = _HEADERS.get(segment)
    if header is None:
        header = _decode_header(segment)
        if len(_HEADERS) >= _HEADERS_MAX:
            _HEADERS.clear()
        _HEADERS[segment] = header
    return dict(header)


def _decode_header(segment: str) -> dict[str, Any]:
    data = _segment_bytes(segment)
    if data is None:
        raise InvalidToken("malformed header")
    try:
        header = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidToken("malformed header") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    return header


def _segment_bytes(segment: str) -> bytes | None:
    """Decode a base64url segment as strictly as PyJWT does; None for one it refuses (or an empty one).

    The base64url alphabet, at most two '=' and only on a segment whose length is a multiple
    of 4, no impossible length, and the canonical encoding (no stray bits in the last character).
    """
    stripped = segment.rstrip("=")
    if (
        not _SEGMENT.fullmatch(segment)
        or (stripped != segment and len(segment) % 4)
        or len(stripped) % 4 == 1
    ):
        return None
    try:
        data = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (ValueError, binascii.Error):
        return None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != stripped:
        return None
    return data
