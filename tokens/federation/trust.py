"""Workload identity federation: an external platform's token authenticates an M2M application.

A CI job or a pod already holds a short-lived token signed by its platform (GitHub Actions'
OIDC token, GitLab CI's `id_tokens`, a Kubernetes projected service-account token, a SPIFFE
JWT-SVID). An application that trusts that issuer (`FederatedIdentity`) accepts the token as
its client assertion (RFC 7523 §2.2, as Azure's federated credentials and Keycloak do):
`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, the external
token as `client_assertion`, and the application's `client_id`.

The checks, in order (`inspect` reports each; `authenticate` needs them all):
- state: the trust and its application are active (`authenticate` looks among those only; the
  dashboard's "test a token" may be run on any trust, and must not call another one accepted);
- format: a compact JWS of at most MAX_CREDENTIAL_LENGTH characters (a 1 MB token is refused
  before it is parsed);
- algorithm: asymmetric only (RS/PS 256–512, ES256, ES384, EdDSA); `none` and HMAC refused,
  and the key's type pins the algorithms it may verify (an HS256 token "signed" with an RSA
  public key matches nothing);
- issuer: a live trust of this application names the token's `iss` exactly (a SPIFFE
  JWT-SVID without `iss` is matched by its trust domain, `spiffe://domain`);
- keys and signature: the issuer's keys (OIDC discovery → `jwks_uri`, or the pasted JWKS or
  SPIFFE bundle), the token's `kid` among them;
- audience, expiry (`exp` required), not-before (`nbf`, and `iat` not in the future), age
  (`iat` at most the trust's `max_token_age` ago; without `iat`, `exp` at most that far ahead),
  30 seconds of leeway;
- subject (exact, or `*` wildcards) and every claim condition;
- replay: a `jti`, where the token has one, is accepted once per issuer, whatever the
  application (the same cache as private_key_jwt assertions; fails closed when the cache is down).

Issuer keys are fetched with `portal.infra.outbound` (HTTPS, public addresses, pinned connection,
timeouts, a size limit) and cached (PORTAL_FEDERATION_KEYS_CACHE_SECONDS). An unknown `kid`
refreshes them, but at most once per PORTAL_FEDERATION_KEYS_REFRESH_SECONDS per issuer, shared
by every app server through the cache, and a failed fetch counts too: an attacker's made-up
kids or an issuer that is down never make the portal fetch on every request. A first fetch
that succeeds leaves the next unknown kid free to refresh at once (a rotation just after it).
While the cache is down, each process keeps its own guard and copy of the keys instead
(`tokens.federation.process_keys`): tokens without a `jti` keep verifying.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone

from portal.infra import hotcache, outbound
from portal.infra.cache import cache_is_down
from portal.json_input import encodable
from portal.principal import MAX_CREDENTIAL_LENGTH
from tokens.federation import process_keys
from tokens.jwk import PRIVATE_MEMBERS
from tokens.models import MAX_TRUSTS_PER_ISSUER, FederatedIdentity, M2MApplication

log = logging.getLogger(__name__)

#: The asymmetric algorithms an external token may be signed with (RFC 8725 §3.1).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_CURVE_ALGORITHMS = {"P-256": ("ES256",), "P-384": ("ES384",), "Ed25519": ("EdDSA",)}
LEEWAY = 30
#: A discovery document or JWKS larger than this is refused (real ones are a few KiB).
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_KEYS = 32
MIN_RSA_KEY_SIZE = 2048
KEYS_CACHE_PREFIX = "tokens:federation-keys:"
REFRESH_GUARD_PREFIX = "tokens:federation-refresh:"
REPLAY_CACHE_PREFIX = "tokens:federation-jti:"
USER_AGENT = "IdentityPortal-Federation/1"
LAST_USED_RESOLUTION_SECONDS = 60
SPIFFE_SCHEME = "spiffe://"


# --- presets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """What a platform's tokens look like, to fill in and explain a trust."""

    key: str
    label: str
    issuer: str  # "" when each installation has its own (a cluster, a self-managed GitLab)
    subject_example: str
    subject_help: str
    conditions: tuple[str, ...]  # claim names worth pinning
    max_token_age: int
    explanation: str
    #: The literal start every subject pattern of this platform must have (owner, namespace…).
    subject_prefix: re.Pattern | None = None


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            key="github_actions",
            label="GitHub Actions",
            issuer="https://token.actions.githubusercontent.com",
            subject_example="repo:ORG/REPO:ref:refs/heads/main",
            subject_help=(
                "repo:ORG/REPO:ref:refs/heads/BRANCH for a branch, repo:ORG/REPO:environment:NAME for a "
                "deployment environment, repo:ORG/REPO:pull_request for pull requests."
            ),
            conditions=("repository", "ref", "environment", "job_workflow_ref"),
            max_token_age=900,
            explanation=(
                "The job asks GitHub for an OIDC token (permissions: id-token: write) with this portal as "
                "audience. Pin the repository and the branch or environment: a `*` in the owner or "
                "repository would trust other people's repositories."
            ),
            subject_prefix=re.compile(r"repo:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:"),
        ),
        Preset(
            key="gitlab_ci",
            label="GitLab CI",
            issuer="https://gitlab.com",
            subject_example="project_path:GROUP/PROJECT:ref_type:branch:ref:main",
            subject_help="project_path:GROUP/PROJECT:ref_type:branch:ref:BRANCH (or ref_type:tag:ref:TAG).",
            conditions=("project_path", "ref", "environment"),
            max_token_age=3600,
            explanation=(
                "The job declares an `id_tokens:` entry whose `aud` is this portal. Self-managed GitLab: "
                "your instance's URL is the issuer. Pin the project path and the ref."
            ),
            subject_prefix=re.compile(r"project_path:[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+:"),
        ),
        Preset(
            key="kubernetes",
            label="Kubernetes",
            issuer="",
            subject_example="system:serviceaccount:NAMESPACE:NAME",
            subject_help="system:serviceaccount:NAMESPACE:SERVICEACCOUNT.",
            conditions=(),
            max_token_age=3600,
            explanation=(
                "A projected service-account token (audience: this portal). The issuer is your cluster's "
                "service-account issuer (`kubectl get --raw /.well-known/openid-configuration`); its keys "
                "must be reachable over HTTPS, or paste the cluster's JWKS. Tokens live an hour by default."
            ),
            subject_prefix=re.compile(r"system:serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:"),
        ),
        Preset(
            key="spiffe",
            label="SPIFFE",
            issuer="",
            subject_example="spiffe://TRUST-DOMAIN/PATH",
            subject_help="The workload's SPIFFE ID, spiffe://trust-domain/path.",
            conditions=(),
            max_token_age=900,
            explanation=(
                "A JWT-SVID. The issuer is your SPIRE OIDC discovery provider's URL, or "
                "spiffe://TRUST-DOMAIN with the trust bundle (a JWKS) pasted in. Pin the whole SPIFFE ID."
            ),
            subject_prefix=re.compile(r"spiffe://[a-z0-9._-]+/"),
        ),
    )
}


# --- configuring a trust ------------------------------------------------------------------------

_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_CONDITIONS = 10
MAX_CONDITION_VALUES = 20


#: Longer than any subject a platform issues (GitHub's, with every claim, is under 300).
MAX_SUBJECT_LENGTH = 1024


def subject_matches(pattern: str, subject: str) -> bool:
    """Return whether `subject` matches a subject pattern: `*` matches anything, the rest literally.

    In linear time: the literal parts are found in order, each after the one before. (A regular
    expression with one `.*` per `*` backtracks: three of them and a long forged `sub` held a
    worker for seconds, before the token's signature was even known to be bad.)
    """
    if len(subject) > MAX_SUBJECT_LENGTH:
        return False
    first, *middle_and_last = pattern.split("*")
    if not middle_and_last:
        return subject == pattern
    *middle, last = middle_and_last
    if not subject.startswith(first) or len(subject) < len(first) + len(last):
        return False
    position, end = len(first), len(subject) - len(last)
    for part in middle:
        found = subject.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return subject.endswith(last)


def is_portal_issuer(issuer: str) -> bool:
    """Return whether `issuer` is the portal's own (with or without a trailing slash)."""
    return issuer.rstrip("/") == settings.PORTAL_ISSUER.rstrip("/")


def clean_issuer(issuer: str, *, has_jwks: bool) -> str:
    """Check an issuer URL (or `spiffe://domain` with a pasted bundle); return it or raise ValidationError."""
    issuer = (issuer or "").strip()
    if not issuer:
        raise ValidationError({"issuer": "Enter the issuer URL (the tokens' `iss`)."})
    if is_portal_issuer(issuer):
        # Its access tokens go to resource servers: trusted here, any of them could mint tokens
        # for the application with a token it was sent.
        raise ValidationError(
            {
                "issuer": "This is the portal's own issuer: its access tokens cannot authenticate an "
                "application. Give the workload the application's own credentials."
            }
        )
    if len(issuer) > 255:
        raise ValidationError({"issuer": "The issuer is too long."})
    if "*" in issuer:
        raise ValidationError({"issuer": "Wildcards are allowed in the subject only, never in the issuer."})
    if issuer.startswith(SPIFFE_SCHEME):
        if not re.fullmatch(r"spiffe://[a-z0-9._-]+", issuer):
            raise ValidationError({"issuer": "Write a SPIFFE trust domain as spiffe://example.org."})
        if not has_jwks:
            raise ValidationError({"jwks": "A spiffe:// trust domain needs its trust bundle pasted in."})
        return issuer
    try:
        destination = outbound.parse_url(
            issuer, allow_insecure_localhost=insecure_localhost_allowed(), purpose="Issuer keys are fetched"
        )
    except ValidationError as exc:
        raise ValidationError({"issuer": exc.messages}) from None
    if "?" in destination.path:
        raise ValidationError({"issuer": "An issuer URL has no query string."})
    return issuer


def clean_subject(subject: str, preset: str, issuer: str = "") -> str:
    """Check a subject pattern: not empty, not only wildcards, and pinned to one owner for a preset.

    The owner rule binds the preset chosen and any preset whose own issuer `issuer` is: GitHub's
    issuer with the custom preset is still GitHub, where `repo:*/deploy` trusts everybody's.
    """
    subject = (subject or "").strip()
    if not subject:
        raise ValidationError({"subject": "Enter the subject to accept."})
    if len(subject) > 255 or any(not c.isprintable() for c in subject):
        raise ValidationError({"subject": "Use at most 255 printable characters."})
    if not subject.replace("*", "").strip(":/"):
        raise ValidationError(
            {"subject": "A subject of wildcards alone would trust every workload of the issuer."}
        )
    issuer = issuer.rstrip("/")
    for found in PRESETS.values():
        if found.subject_prefix is None or not (
            found.key == preset or (found.issuer and found.issuer.rstrip("/") == issuer)
        ):
            continue
        start = found.subject_prefix.match(subject)
        if start is None or "*" in subject[: start.end()]:
            raise ValidationError(
                {"subject": f"Start like {found.subject_example!r}, without wildcards in the owner part."}
            )
    return subject


def clean_conditions(conditions: Any) -> dict[str, list[str]]:
    """Return conditions as {claim name: [accepted values]}, from a dict or `NAME=VALUE` strings."""
    if isinstance(conditions, list | tuple):
        pairs: dict[str, list[str]] = {}
        for item in conditions:
            name, sep, value = str(item).partition("=")
            if not sep:
                raise ValidationError(
                    {"conditions": f"Write each condition as NAME=VALUE, not {str(item)[:40]!r}."}
                )
            pairs.setdefault(name.strip(), []).append(value.strip())
        conditions = pairs
    if not isinstance(conditions, dict):
        raise ValidationError({"conditions": "Conditions map claim names to values."})
    if len(conditions) > MAX_CONDITIONS:
        raise ValidationError({"conditions": f"At most {MAX_CONDITIONS} conditions."})
    cleaned = {}
    for name, values in conditions.items():
        values = [values] if isinstance(values, str) else values
        if not isinstance(name, str) or not _CLAIM_NAME.fullmatch(name):
            raise ValidationError({"conditions": f"{str(name)[:40]!r} is not a claim name."})
        if name in ("iss", "sub", "aud", "exp", "nbf", "iat", "jti"):
            raise ValidationError({"conditions": f"{name} is checked by its own field."})
        if not isinstance(values, list) or not values or len(values) > MAX_CONDITION_VALUES:
            raise ValidationError({"conditions": f"Give {name} one to {MAX_CONDITION_VALUES} values."})
        if any(not isinstance(v, str) or not v or len(v) > 255 for v in values):
            raise ValidationError({"conditions": f"Each value of {name} is a non-empty string."})
        cleaned[name] = sorted(set(values))
    return cleaned


def clean_jwks(text_or_data: Any) -> dict | None:
    """Return a pasted JWKS or SPIFFE trust bundle with its usable public keys, or None when empty."""
    if text_or_data in (None, "", {}):
        return None
    data = text_or_data
    if isinstance(text_or_data, str):
        if len(text_or_data) > MAX_DOCUMENT_BYTES:
            raise ValidationError({"jwks": "This key set is too large."})
        try:
            data = json.loads(text_or_data)
        except (ValueError, RecursionError):
            raise ValidationError({"jwks": "Paste a JWKS: a JSON object with a `keys` list."}) from None
    try:
        keys = parse_jwks(data)
    except KeysUnavailable as exc:
        raise ValidationError({"jwks": str(exc)}) from None
    return {"keys": [jwk for jwk, _algorithms in keys]}


def insecure_localhost_allowed() -> bool:
    """Return whether plain-http loopback issuers are allowed (development and tests only)."""
    return bool(getattr(settings, "PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST", False))


# --- issuer keys --------------------------------------------------------------------------------


class KeysUnavailable(Exception):  # noqa: N818 - reads better at call sites
    """The issuer's keys could not be had; the message says why (no secret, no token)."""


def key_algorithms(jwk: dict) -> tuple[str, ...]:
    """Return the algorithms a public JWK may verify: pinned by its type (and its `alg`, if it names one)."""
    kty = jwk.get("kty")
    if kty == "RSA":
        allowed: tuple[str, ...] = _RSA_ALGORITHMS
    elif kty in ("EC", "OKP"):
        allowed = _CURVE_ALGORITHMS.get(jwk.get("crv"), ())
    else:
        allowed = ()  # "oct" (HMAC) and anything else verify nothing
    declared = jwk.get("alg")
    if declared is not None:
        allowed = (declared,) if declared in allowed else ()
    return allowed


#: `use` values of keys that verify tokens: a JWKS's `sig` (or none), and a SPIFFE bundle's
#: `jwt-svid` (SPIFFE Trust Domain and Bundle, section 4; its `x509-svid` keys verify no JWT).
SIGNING_USES = (None, "sig", "jwt-svid")
#: The public JWK members (RFC 7517, 7518 and 8037) a stored key keeps.
KEPT_MEMBERS = ("kty", "kid", "use", "alg", "crv", "x", "y", "n", "e")


def parse_jwks(data: Any) -> list[tuple[dict, tuple[str, ...]]]:
    """Return the usable signing keys of a JWKS as (public JWK, algorithms); raise KeysUnavailable."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysUnavailable("the key set is not a JWKS (a JSON object with a `keys` list)")
    if len(data["keys"]) > MAX_KEYS:
        raise KeysUnavailable(f"the key set has more than {MAX_KEYS} keys")
    usable = []
    unstorable = 0
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or PRIVATE_MEMBERS & set(jwk):
            continue  # private or symmetric material is never used (nor kept)
        if any(not isinstance(jwk.get(name, ""), str) for name in ("kty", "crv", "alg", "use", "kid")):
            continue  # a member of another type (a list for `crv`): no key this verifies with
        if jwk.get("use") not in SIGNING_USES:
            continue
        algorithms = key_algorithms(jwk)
        if not algorithms:
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithms[0]).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, UnsupportedAlgorithm):
            continue
        if getattr(key, "key_size", MIN_RSA_KEY_SIZE) < MIN_RSA_KEY_SIZE and jwk.get("kty") == "RSA":
            continue
        # Only the members verification reads are kept (stored as JSON: PostgreSQL refuses a NUL
        # or a lone surrogate in any of them, so a key carrying one is not usable either).
        public = {k: jwk[k] for k in KEPT_MEMBERS if k in jwk}
        if not all(storable_text(v) for v in public.values() if isinstance(v, str)):
            unstorable += 1
            continue
        usable.append((public, algorithms))
    if not usable:
        if unstorable:
            raise KeysUnavailable(
                "the key set holds no usable public signing key: a NUL or a lone surrogate "
                "(an escape from \\ud800 to \\udfff) in a key's kid or other member cannot be stored"
            )
        raise KeysUnavailable("the key set holds no usable public signing key")
    return usable


def storable_text(text: str) -> bool:
    """Return whether PostgreSQL can store `text` in jsonb: no NUL, and valid UTF-8.

    `json.loads` turns the escapes `\\u0000` and `\\ud800` (a lone surrogate) into characters
    that pass for text in Python; PostgreSQL refuses both. (Form fields and command options
    never carry them: Django decodes a request with replacement characters, and PortalCommand
    refuses such options.)
    """
    return "\x00" not in text and encodable(text)


def _get_json(url: str, what: str) -> dict:
    """GET a JSON object through the SSRF-safe sender; raise KeysUnavailable with a short reason."""
    timeout = settings.PORTAL_FEDERATION_TIMEOUT_SECONDS
    allow_local = insecure_localhost_allowed()
    try:
        destination = outbound.parse_url(
            url, allow_insecure_localhost=allow_local, purpose="Issuer keys are fetched"
        )
        addresses = outbound.resolve(destination, allow_insecure_localhost=allow_local, timeout=timeout)
    except ValidationError as exc:
        raise KeysUnavailable(f"{what}: refused address ({' '.join(exc.messages)})") from None
    try:
        response = outbound.exchange(
            "GET",
            destination,
            addresses,
            timeout=timeout,
            max_bytes=MAX_DOCUMENT_BYTES,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
    except TimeoutError:
        raise KeysUnavailable(f"{what}: timed out") from None
    except (OSError, http.client.HTTPException) as exc:
        raise KeysUnavailable(f"{what}: connection failed ({type(exc).__name__})") from None
    if response.status != 200:
        raise KeysUnavailable(f"{what}: HTTP {response.status}")
    if response.truncated:
        raise KeysUnavailable(f"{what}: larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        data = json.loads(response.body)
    except (ValueError, RecursionError):
        raise KeysUnavailable(f"{what}: not JSON") from None
    if not isinstance(data, dict):
        raise KeysUnavailable(f"{what}: not a JSON object")
    return data


def fetch_issuer_keys(issuer: str) -> list[dict]:
    """Fetch an issuer's public keys by OIDC discovery (`/.well-known/openid-configuration` → `jwks_uri`)."""
    document = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery")
    # OpenID Connect Discovery §4.3: the document's issuer must be the one asked for.
    if document.get("issuer") != issuer:
        raise KeysUnavailable("discovery: the document names another issuer")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise KeysUnavailable("discovery: no jwks_uri")
    return [jwk for jwk, _algorithms in parse_jwks(_get_json(jwks_uri, "jwks"))]


def _issuer_digest(issuer: str) -> str:
    return hashlib.sha256(issuer.encode()).hexdigest()


def forget_issuer_keys(issuer: str) -> None:
    """Drop an issuer's cached keys and its refresh guard (tests; an operator after a key compromise).

    Those this process holds while the cache is down too; other processes' copies end with the
    cache's outage (they are read only meanwhile) or with PORTAL_FEDERATION_KEYS_CACHE_SECONDS.
    """
    digest = _issuer_digest(issuer)
    hotcache.invalidate([KEYS_CACHE_PREFIX + digest, REFRESH_GUARD_PREFIX + digest])
    process_keys.forget(digest)


def _may_refresh(digest: str) -> bool:
    interval = settings.PORTAL_FEDERATION_KEYS_REFRESH_SECONDS
    if interval <= 0:
        return True
    # One fetch per issuer per interval across every app server sharing the cache; the guard
    # is taken before fetching, so a failing issuer is not asked again before it ends either.
    if not cache_is_down():
        taken = cache.add(REFRESH_GUARD_PREFIX + digest, 1, timeout=interval)
        if taken or not cache_is_down():
            return bool(taken)
    # The cache is down, and its `add` answers False for every issuer: each process keeps its
    # own guard meanwhile (one fetch per issuer per interval per process).
    return process_keys.take_guard(digest, interval)


def _cached_keys(digest: str) -> list[dict] | None:
    keys = cache.get(KEYS_CACHE_PREFIX + digest)
    if keys is None and cache_is_down():
        keys = process_keys.keys(digest, settings.PORTAL_FEDERATION_KEYS_CACHE_SECONDS)
    return keys


def issuer_keys(identity: FederatedIdentity, kid: str | None) -> list[dict]:
    """Return the trust's public keys, fetching (bounded) when none are cached or `kid` is unknown.

    While the cache is down, this process's own copy of the keys and its own refresh guard stand
    in for the shared ones (`tokens.federation.process_keys`).
    """
    if identity.jwks:
        return list(identity.jwks.get("keys", []))
    digest = _issuer_digest(identity.issuer)
    keys = _cached_keys(digest)
    known = keys is not None and (not kid or any(jwk.get("kid") == kid for jwk in keys))
    if known:
        return keys
    if not _may_refresh(digest):
        if keys is None:
            raise KeysUnavailable("the issuer's keys were fetched (or tried) moments ago; retry later")
        return keys  # the kid stays unknown until the next refresh is allowed
    try:
        fresh = fetch_issuer_keys(identity.issuer)
    except KeysUnavailable:
        if keys is None:
            raise
        log.warning(
            "federation: could not refresh the keys of trust %s; keeping the cached ones", identity.public_id
        )
        return keys
    cache.set(KEYS_CACHE_PREFIX + digest, fresh, timeout=settings.PORTAL_FEDERATION_KEYS_CACHE_SECONDS)
    if cache_is_down():
        process_keys.remember(digest, fresh)
    if keys is None:
        # A first (or expired-cache) fetch that worked does not hold the guard: the issuer may
        # rotate right after it, and its new kid must be picked up at once. A refresh for an
        # unknown kid, and a failed fetch, keep it for the whole interval.
        cache.delete(REFRESH_GUARD_PREFIX + digest)
        process_keys.release_guard(digest)
    return fresh


# --- checking a token -------------------------------------------------------------------------


@dataclass
class Check:
    """One check of a presented token: passed (True), failed (False) or not reached (None)."""

    name: str
    passed: bool | None
    detail: str = ""


@dataclass
class Report:
    """Every check of a token against a trust, in order."""

    checks: list[Check] = field(default_factory=list)
    claims: dict = field(default_factory=dict)

    def add(self, name: str, passed: bool | None, detail: str = "") -> bool:
        self.checks.append(Check(name, passed, detail))
        return bool(passed)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed is not False for check in self.checks)

    @property
    def failure(self) -> str:
        """Return the name of the first failed check ("" when every check passed)."""
        return next((check.name for check in self.checks if check.passed is False), "")


def _timestamp(value) -> float | None:
    """Return a NumericDate claim as a finite float, or None (a bool, a string, 1e400, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 120 else text[:117] + "…"


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ParsedToken:
    """A compact JWS split once: its header and claims (unverified), and what the signature covers."""

    header: dict
    claims: dict
    signing_input: bytes
    signature: bytes


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def read_token(token: str) -> ParsedToken | None:
    """Split a compact JWS (RFC 7515 §7.1) and decode its header and claims, or return None.

    Done once per request, with a regular expression for the base64url alphabet: PyJWT checks
    it a character at a time (about a millisecond for a 1.5 KB platform token, each time).
    """
    if not isinstance(token, str) or not token or len(token) > MAX_CREDENTIAL_LENGTH or token.count(".") != 2:
        return None
    parts = token.split(".")
    if not all(_SEGMENT.fullmatch(part) and len(part) % 4 != 1 for part in parts):
        return None
    try:
        header, claims = json.loads(_segment(parts[0])), json.loads(_segment(parts[1]))
        signature = _segment(parts[2])
    except (ValueError, binascii.Error, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return ParsedToken(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def token_issuer(claims: dict) -> str | None:
    """Return the issuer a token's trust is found by: its `iss`, or a JWT-SVID's trust domain."""
    iss = claims.get("iss")
    if isinstance(iss, str) and iss and len(iss) <= 255:
        return iss if _printable(iss) else None
    sub = claims.get("sub")
    if iss is None and isinstance(sub, str) and sub.startswith(SPIFFE_SCHEME):
        domain = SPIFFE_SCHEME + sub[len(SPIFFE_SCHEME) :].split("/", 1)[0]
        return domain if len(domain) <= 255 and _printable(domain) else None
    return None


def _printable(text: str) -> bool:
    # An issuer is a URL (or a SPIFFE trust domain): printable ASCII. Anything else names no
    # trust, and a NUL or a lone surrogate would fail the database query that looks for one.
    return all(" " < c <= "~" for c in text)


def _check_signature(report: Report, token: ParsedToken, identity: FederatedIdentity) -> bool:
    header = token.header
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions the recipient must understand; this portal knows none.
        report.add(
            "critical header", False, "The token lists critical extensions this portal does not support."
        )
        return False
    alg = header.get("alg")
    if not report.add(
        "algorithm",
        alg in ALLOWED_ALGORITHMS,
        f"{_short(alg)} is allowed"
        if alg in ALLOWED_ALGORITHMS
        else f"{_short(alg)} is not an allowed algorithm (asymmetric only: never none or HMAC)",
    ):
        return False
    kid = header.get("kid")
    kid = kid if isinstance(kid, str) and 0 < len(kid) <= 255 else None
    try:
        keys = issuer_keys(identity, kid)
    except KeysUnavailable as exc:
        report.add("keys", False, f"The issuer's keys could not be fetched: {exc}.")
        return False
    report.add(
        "keys", True, f"{len(keys)} key(s) from {'the pasted key set' if identity.jwks else 'the issuer'}"
    )
    candidates = [jwk for jwk in keys if jwk.get("kid") == kid] if kid else keys
    if not candidates:
        report.add("signature", False, "The token's key id (kid) is not among the issuer's keys.")
        return False
    algorithm = jwt.get_algorithm_by_name(alg)
    for jwk in candidates:
        if alg not in key_algorithms(jwk):
            continue
        try:
            verified = algorithm.verify(
                token.signing_input, jwt.PyJWK(jwk, algorithm=alg).key, token.signature
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, UnsupportedAlgorithm):
            continue
        if verified:
            return report.add(
                "signature", True, f"Signed with key {_short(jwk.get('kid') or '(no kid)')} ({alg})"
            )
    return report.add("signature", False, "The signature matches no key of the issuer for this algorithm.")


def _check_claims(report: Report, claims: dict, identity: FederatedIdentity, now: float) -> None:
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    report.add(
        "audience",
        identity.audience in audiences,
        f"aud names {identity.audience}"
        if identity.audience in audiences
        else f"aud must name {identity.audience}",
    )
    exp = _timestamp(claims.get("exp"))
    if exp is None:
        report.add("expiry", False, "The token has no usable exp.")
    else:
        report.add(
            "expiry", now < exp + LEEWAY, "Not expired" if now < exp + LEEWAY else "The token has expired."
        )
    nbf = _timestamp(claims.get("nbf")) if "nbf" in claims else None
    iat = _timestamp(claims.get("iat")) if "iat" in claims else None
    if ("nbf" in claims and nbf is None) or ("iat" in claims and iat is None):
        report.add("not before", False, "nbf or iat is not a number.")
    else:
        early = (nbf is not None and nbf > now + LEEWAY) or (iat is not None and iat > now + LEEWAY)
        report.add("not before", not early, "The token is not valid yet." if early else "Already valid")
    limit = identity.max_token_age + LEEWAY
    if iat is not None:
        age = now - iat
        report.add(
            "token age",
            age <= limit,
            f"Issued {int(max(age, 0))} s ago (at most {identity.max_token_age} s)"
            if age <= limit
            else f"Issued {int(age)} s ago: older than this trust's maximum of {identity.max_token_age} s.",
        )
    elif exp is not None:
        left = exp - now
        report.add(
            "token age",
            left <= limit,
            "No iat: it expires soon enough"
            if left <= limit
            else f"No iat, and it expires more than {identity.max_token_age} s from now.",
        )
    else:
        report.add("token age", False, "Neither iat nor exp: the token's age is unknown.")
    sub = claims.get("sub")
    matched = isinstance(sub, str) and subject_matches(identity.subject, sub)
    report.add(
        "subject",
        matched,
        f"{_short(sub)} matches {identity.subject}"
        if matched
        else f"{_short(sub)} does not match {identity.subject}",
    )
    for name, values in sorted((identity.conditions or {}).items()):
        value = claims.get(name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        ok = isinstance(value, str) and value in values
        report.add(
            f"condition {name}",
            ok,
            f"{name} is {_short(value)}" if ok else f"{name} is {_short(value)}, not {' or '.join(values)}",
        )


def _check_state(report: Report, identity: FederatedIdentity) -> None:
    """Check that the trust and its application are active, as `_trusts` requires of those it tries."""
    application = identity.application
    refused = []
    if not identity.is_active:
        state = identity.get_status_display().lower()
        if identity.status == FederatedIdentity.Status.SUSPENDED and identity.suspension_reason:
            state += f" ({identity.get_suspension_reason_display().lower()})"
        refused.append(f"The trust is {state}: the token endpoint accepts tokens through active trusts only.")
    if not application.is_active:
        refused.append(
            f"The application is {application.get_status_display().lower()}: "
            "the token endpoint accepts tokens for active applications only."
        )
    report.add("state", not refused, " ".join(refused) or "The trust and its application are active")


def inspect(token: str | ParsedToken, identity: FederatedIdentity, *, now: float | None = None) -> Report:
    """Run every check of `token` against one trust, recording nothing (the dashboard's "test a token").

    The replay check is reported, not made: the `jti` is only ever recorded at the token endpoint.
    """
    report = Report()
    _check_state(report, identity)
    read = token if isinstance(token, ParsedToken) else read_token(token)
    if not report.add(
        "format",
        read is not None,
        "A signed JWT"
        if read is not None
        else f"Not a signed JWT of at most {MAX_CREDENTIAL_LENGTH} characters.",
    ):
        return report
    claims = read.claims
    report.claims = claims
    issuer = token_issuer(claims)
    report.add(
        "issuer",
        issuer == identity.issuer,
        f"iss is {identity.issuer}"
        if issuer == identity.issuer
        else f"iss is {_short(issuer)}, not {identity.issuer}",
    )
    _check_signature(report, read, identity)
    _check_claims(report, claims, identity, time.time() if now is None else now)
    jti = claims.get("jti")
    report.add(
        "replay", None if jti is not None else True, "Checked at the token endpoint only" if jti else "No jti"
    )
    return report


def _first_use(identity: FederatedIdentity, jti: Any, claims: dict, now: float) -> bool:
    """Record the `jti` until the token can no longer be accepted; False if seen before, unusable,
    or the cache is down.

    That is its expiry or, sooner, the end of the trust's `max_token_age` after `iat`
    (`_check_claims`), never more than that age from now: the token's own `exp`, however far
    away, sets no lifetime here (Redis refuses a huge one).
    """
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        return False
    try:
        jti.encode()
    except UnicodeEncodeError:
        return False
    exp = _timestamp(claims.get("exp")) or now
    iat = _timestamp(claims.get("iat")) if "iat" in claims else None
    until = min(exp, iat + identity.max_token_age) if iat is not None else exp
    until = min(until, now + identity.max_token_age + LEEWAY)
    # Per issuer, not per trust: one platform token mints one portal token, wherever presented.
    digest = hashlib.sha256(f"{identity.issuer}\x00{jti}".encode()).hexdigest()
    return bool(cache.add(REPLAY_CACHE_PREFIX + digest, 1, timeout=max(1, math.ceil(until + LEEWAY - now))))


def _trusts(client_id: str, issuer: str) -> list[FederatedIdentity]:
    return list(
        FederatedIdentity.objects.select_related("application__organization")
        .filter(
            application__client_id=client_id,
            application__status=M2MApplication.Status.ACTIVE,
            issuer=issuer,
            status=FederatedIdentity.Status.ACTIVE,
        )
        .order_by("pk")[:MAX_TRUSTS_PER_ISSUER]
    )


def authenticate(token: str, *, client_id: str | None) -> tuple[M2MApplication, FederatedIdentity] | None:
    """Return the application and the trust an external token authenticates, else None (reason logged).

    The trusts are those of the `client_id` sent with the token for the token's issuer; the
    first one whose every check passes wins. Its `jti`, if any, is then spent.
    """
    read = read_token(token)
    if read is None:
        log.info("federated assertion refused: not a compact JWS")
        return None
    if not client_id or len(client_id) > 255 or not all(" " <= c <= "~" for c in client_id):
        log.info("federated assertion refused: no client_id sent with it")
        return None
    claims = read.claims
    issuer = token_issuer(claims)
    # A trust in the portal's own issuer is refused where trusts are made; one made before is inert.
    trusts = _trusts(client_id, issuer) if issuer and not is_portal_issuer(issuer) else []
    if not trusts:
        log.info("federated assertion refused: no live trust of client %s for this issuer", client_id)
        return None
    now = time.time()
    for identity in trusts:
        report = inspect(read, identity, now=now)
        if not report.passed:
            log.info("federated assertion refused by trust %s: %s", identity.public_id, report.failure)
            continue
        if "jti" in claims and not _first_use(identity, claims["jti"], claims, now):
            log.info("federated assertion refused by trust %s: jti replayed or unusable", identity.public_id)
            return None
        identity.presented_subject = claims.get("sub")
        identity.presented_issuer = issuer
        _touch(identity)
        return identity.application, identity
    return None


def _touch(identity: FederatedIdentity) -> None:
    now = timezone.now()
    if (
        identity.last_used_at is None
        or (now - identity.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS
    ):
        FederatedIdentity.objects.filter(pk=identity.pk).update(last_used_at=now)
        identity.last_used_at = now


def is_external(assertion: str) -> bool:
    """Return whether an assertion is another issuer's token (its `iss` is not its `sub`), unverified.

    A private_key_jwt assertion is self-issued (`iss` = `sub` = the client id, RFC 7523 §3).
    """
    read = read_token(assertion)
    if read is None:
        return False
    claims = read.claims
    return claims.get("iss") != claims.get("sub")
