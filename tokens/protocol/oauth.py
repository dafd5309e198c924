"""django-oauth-toolkit plumbing: the client-credentials-only server and the request validator.

Clients authenticate against `ClientSecret` digests (HMAC-SHA256, microseconds, not a
password hash) or, for `private_key_jwt` applications, with a signed assertion
(`tokens.protocol.assertions`); tokens are JWTs from `tokens.signing.issuing` and are never
written to the database.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2 import BackendApplicationServer
from oauthlib.oauth2.rfc6749 import errors

from credentials import last_used, policy, usage
from portal import authz
from portal.infra import ratelimit
from portal.infra.crypto import keyed_digest, verify_digest
from portal.infra.observability import note_credential
from portal.infra.request_context import current_request_context
from portal.models import Membership, Organization, User
from portal.principal import MAX_CREDENTIAL_LENGTH
from portal.selectors import role_of
from tokens.clients import snapshot as client_snapshot
from tokens.federation.services import FEDERATED_KIND
from tokens.models import ClientPublicKey, ClientSecret, FederatedIdentity, M2MApplication
from tokens.protocol import client_outcomes, quota
from tokens.protocol.assertions import assertion_parameters, authenticate_assertion_parameters
from tokens.protocol.audience import resolve_audience
from tokens.protocol.exchange import GRANT_TYPE, TokenExchangeGrant
from tokens.signing.issuing import generate_access_token

log = logging.getLogger(__name__)

# last_used_at is written at most this often per secret, so issuing stays free of writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def application_token_lifetime(request) -> int:
    """Return the token lifetime in seconds: the application's, or the exchange's (shorter)."""
    exchange = getattr(request, "portal_exchange", None)
    return exchange.lifetime if exchange is not None else request.client.token_lifetime


class M2MServer(BackendApplicationServer):
    """oauthlib's client-credentials server with per-application lifetimes and our JWTs.

    It also serves RFC 8693 token exchange of API keys (`tokens.protocol.exchange`) for the
    gateways staff allowed. Any other grant type answers `unsupported_grant_type`; no refresh tokens exist.
    """

    def __init__(self, request_validator, token_generator=None, **kwargs):
        super().__init__(
            request_validator,
            token_generator=token_generator or generate_access_token,
            token_expires_in=application_token_lifetime,
        )
        self.grant_types[GRANT_TYPE] = TokenExchangeGrant(request_validator)


def _basic_credentials(request) -> tuple[str, str] | None:
    """Return `(client_id, client_secret)` from an `Authorization: Basic` header (RFC 6749 §2.3.1)."""
    auth = request.headers.get("HTTP_AUTHORIZATION") or request.headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    if len(value) > MAX_CREDENTIAL_LENGTH:
        return ("", "")  # refused before decoding: a huge header costs nothing
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ("", "")
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return ("", "")
    # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def uses_basic_auth(request) -> bool:
    """Return whether the request carries an `Authorization: Basic` header."""
    auth = request.headers.get("HTTP_AUTHORIZATION") or request.headers.get("Authorization") or ""
    return auth.partition(" ")[0].lower() == "basic"


def authenticate_client_credentials(
    client_id: str, client_secret: str
) -> tuple[M2MApplication, ClientSecret] | None:
    """Return the active application and the live secret matching the credentials, else None.

    An unknown client and a wrong secret look the same to the caller; both cost one HMAC.
    What authentication needs (`_live_secrets`): the application's live secrets with the
    application, its organisation, its owner's current role and its scope names (an
    application without a live secret cannot authenticate by secret) — from the shared
    client snapshot when one is warm (`tokens.clients.snapshot`), else one query. A failure
    is counted for usage after the response (`client_outcomes`: wrong, expired or revoked
    secret, suspended or revoked application); success costs nothing more.
    """
    live: list[ClientSecret] = []
    cached = False
    if len(client_secret) > MAX_CREDENTIAL_LENGTH:
        client_secret = ""
    now = timezone.now()
    usable = bool(client_id and client_secret and "\x00" not in client_id and len(client_id) <= 255)
    if usable:
        live, cached = _live_secrets(client_id, now)
    if not live:
        keyed_digest(client_secret or "-")  # same work as a wrong secret
        if usable:
            # Unknown, or known but suspended, revoked, or presenting a dead secret: told apart
            # for usage after the response (one query), so the answer cannot tell either.
            client_outcomes.secret_refused(client_id, client_secret)
        return None
    match = None
    for secret in live:
        if verify_digest(client_secret, pepper_id=secret.pepper_id, digest=secret.digest) and match is None:
            match = secret
    if match is None:
        # A known client with a wrong secret, or with one of its expired or revoked secrets.
        client_outcomes.secret_refused(client_id, client_secret)
        return None
    application = match.application
    if _last_use_due(match, now, from_snapshot=cached):
        # Written by `record_client_use` once the request succeeds: "last used" is the last
        # successful use, not a request refused for its address, rate or scopes.
        match.portal_use_due_at = now
    return application, match


def record_client_use(credential: Any) -> None:
    """Record that a client secret or public key served a successful request (after the response, batched).

    Authentication marks the credential whose once-a-minute write is due (`portal_use_due_at`);
    anything else (None, a federated identity, a credential not due) is ignored.
    """
    due = getattr(credential, "portal_use_due_at", None)
    if due is not None and isinstance(credential, ClientSecret | ClientPublicKey):
        last_used.of_model(type(credential), "last_used_at").add(credential.pk, due)
        credential.last_used_at, credential.portal_use_due_at = due, None


#: Secret pk -> when this process last claimed the secret's once-a-minute `last_used_at` write.
_last_use_claimed: dict[int, float] = {}
_LAST_USE_MARKER = "tokens:client-secret-used:v1:"


def _last_use_due(secret: ClientSecret, now, *, from_snapshot: bool) -> bool:
    """Return whether `last_used_at` is due (at most once a minute per secret).

    From the database the row says when it was last written. A snapshot's row may be older
    than the last write (that write does not drop it): with the snapshot in use, this process
    asks at most once a minute per secret, and the shared cache's `add` lets one server
    write for all of them (the database path claims the minute the same way).
    """
    if secret.last_used_at is not None and now - secret.last_used_at <= LAST_USED_RESOLUTION:
        return False
    if not from_snapshot and not client_snapshot.enabled():
        return True
    clock, seconds = now.timestamp(), LAST_USED_RESOLUTION.total_seconds()
    if from_snapshot and clock - _last_use_claimed.get(secret.pk, -seconds) < seconds:
        return False
    if len(_last_use_claimed) > 10_000:
        _last_use_claimed.clear()
    _last_use_claimed[secret.pk] = clock
    try:
        claimed = cache.add(f"{_LAST_USE_MARKER}{secret.pk}", 1, int(seconds))
    except Exception:  # noqa: BLE001  a cache outage: write it, as without the snapshot
        claimed = True
    return bool(claimed) or not from_snapshot


class _LiveSecretsQuery:
    """The client-authentication query, written once per database vendor.

    `ClientSecret.objects.live(now).filter(application__client_id=…, …)
    .select_related("application__organization")` with the owner's role and the allowed
    scopes' names beside it: the same rows, filters and order, but built through the ORM on
    every request it cost more CPU than the rest of the token request together
    (docs/performance.md). Columns and tables come from the models' metadata; every value is
    a bound parameter. Rows come back converted by the fields' own database converters and
    become model instances through `Model.from_db`, as the ORM would make them.
    """

    def __init__(self, vendor_connection) -> None:
        self.connection = vendor_connection
        quote = vendor_connection.ops.quote_name
        scopes_field = M2MApplication._meta.get_field("allowed_scopes")
        through = scopes_field.remote_field.through._meta
        scope_model = scopes_field.related_model._meta
        membership = Membership._meta
        #: model -> (first column, attnames, [(index, converters, column) for fields that convert])
        self.columns: dict[type, tuple[int, list[str], list[tuple]]] = {}
        selected: list[str] = []
        ops = vendor_connection.ops
        for model, alias in ((ClientSecret, "s"), (M2MApplication, "a"), (Organization, "o")):
            fields = model._meta.concrete_fields
            converted = []
            for index, field in enumerate(fields):
                col = field.get_col(alias)
                converters = ops.get_db_converters(col) + field.get_db_converters(vendor_connection)
                if converters:
                    converted.append((index, converters, col))
            self.columns[model] = (len(selected), [f.attname for f in fields], converted)
            selected += [f"{alias}.{quote(field.column)}" for field in fields]
        role, name = membership.get_field("role").column, scope_model.get_field("name").column
        self.secret_pk = ClientSecret._meta.concrete_fields.index(ClientSecret._meta.pk)
        # `fetch` keeps a secret's columns apart from the application's and organisation's,
        # which it keeps once: their offsets count from the application's first column.
        self.secret_width = width = len(ClientSecret._meta.concrete_fields)
        for model in (M2MApplication, Organization):
            start, names, converted = self.columns[model]
            self.columns[model] = (start - width, names, converted)
        selected += [f"m.{quote(role)}", f"sc.{quote(name)}"]

        def col(meta, alias: str, name: str) -> str:
            return f"{alias}.{quote(meta.get_field(name).column)}"

        secret, app, org, user = ClientSecret._meta, M2MApplication._meta, Organization._meta, User._meta
        app_id, app_org = col(app, "a", "id"), col(app, "a", "organization")
        expires = col(secret, "s", "expires_at")
        self.sql = (
            f"SELECT {', '.join(selected)} FROM {quote(secret.db_table)} s"  # noqa: S608
            f" INNER JOIN {quote(app.db_table)} a ON {app_id} = {col(secret, 's', 'application')}"
            f" INNER JOIN {quote(org.db_table)} o ON {col(org, 'o', 'id')} = {app_org}"
            # The owner's current role bounds the token's scopes (portal.authz); none once they
            # left or their account is deactivated (portal.selectors.authority_memberships).
            f" LEFT OUTER JOIN {quote(user.db_table)} u ON {col(user, 'u', 'id')} = {col(app, 'a', 'owner')}"
            f" AND {col(user, 'u', 'is_active')}"
            f" LEFT OUTER JOIN {quote(membership.db_table)} m ON {col(membership, 'm', 'user')} ="
            f" {col(user, 'u', 'id')} AND {col(membership, 'm', 'organization')} = {app_org}"
            # One row per allowed scope (a secret or two times a handful of scopes).
            f" LEFT OUTER JOIN {quote(through.db_table)} t ON"
            f" {col(through, 't', scopes_field.m2m_field_name())} = {app_id}"
            f" LEFT OUTER JOIN {quote(scope_model.db_table)} sc ON"
            f" {col(scope_model, 'sc', 'id')} = {col(through, 't', scopes_field.m2m_reverse_field_name())}"
            f" WHERE {col(app, 'a', 'client_id')} = %s AND {col(app, 'a', 'status')} = %s"
            f" AND {col(app, 'a', 'token_endpoint_auth_method')} = %s"
            f" AND {col(secret, 's', 'revoked_at')} IS NULL AND ({expires} IS NULL OR {expires} > %s)"
            f" ORDER BY {col(secret, 's', 'created_at')} DESC, {col(secret, 's', 'id')} DESC"
        )

    def fetch(self, client_id: str, now) -> tuple:
        """Run the query; return what `build` needs, picklable for the cache (the client snapshot).

        `(secret rows, application and organisation row, owner's role, scope names)`: raw column
        values, before the fields' converters, the secrets newest first. No secret: `()`.
        """
        connection = self.connection
        params = [
            client_id,
            M2MApplication.Status.ACTIVE.value,
            M2MApplication.AuthMethod.CLIENT_SECRET.value,
            connection.ops.adapt_datetimefield_value(now),
        ]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if not rows:
            return ()
        width = self.secret_width
        secrets: dict[Any, tuple] = {}
        scope_names: set[str] = set()
        for row in rows:
            if row[-1] is not None:
                scope_names.add(row[-1])
            secrets.setdefault(row[self.secret_pk], tuple(row[:width]))  # once per secret, beside each scope
        first = rows[0]
        return (tuple(secrets.values()), tuple(first[width:-2]), first[-2], tuple(sorted(scope_names)))

    def build(self, snapshot: tuple, now) -> list[ClientSecret]:
        """Return the live secrets of a `fetch` result at `now`, each with its application."""
        if not snapshot:
            return []
        secret_rows, application_row, role, scope_names = snapshot
        application = self._instance(M2MApplication, application_row)
        application.organization = self._instance(Organization, application_row)
        application.owner_role = role
        application.portal_scope_names = set(scope_names)
        live = []
        for row in secret_rows:
            secret = self._instance(ClientSecret, row)
            if secret.expires_at is not None and secret.expires_at <= now:
                continue  # expired since the snapshot was read, as the query would find
            secret.application = application
            live.append(secret)
        return live

    def _instance(self, model, row):
        start, names, converted = self.columns[model]
        values = list(row[start : start + len(names)])
        for index, converters, col in converted:
            for converter in converters:
                values[index] = converter(values[index], col, self.connection)
        return model.from_db(self.connection.alias, names, values)


_live_secrets_queries: dict[str, _LiveSecretsQuery] = {}


def _live_secrets(client_id: str, now) -> tuple[list[ClientSecret], bool]:
    """Return the application's live secrets, newest first, with their application, and whether
    they came from the shared client snapshot (`_LiveSecretsQuery`, `client_snapshot`)."""
    query = _live_secrets_queries.get(connection.vendor)
    if query is None:
        query = _live_secrets_queries[connection.vendor] = _LiveSecretsQuery(connection)
    if not client_snapshot.enabled():
        return query.build(query.fetch(client_id, now), now), False
    snapshot = client_snapshot.read(client_id)
    if snapshot is not None:
        return query.build(snapshot, now), True
    snapshot = query.fetch(client_id, now)
    if snapshot:  # an unknown client id is not stored: nobody fills the cache with guesses
        client_snapshot.store(client_id, snapshot)
    return query.build(snapshot, now), False


def authenticate_client_parameters(
    *,
    basic: tuple[str, str] | None,
    client_id: str,
    client_secret: str,
    assertion: tuple[str, str] | None,
    endpoint: str | None,
) -> tuple[M2MApplication, ClientSecret | ClientPublicKey] | None:
    """Return the application and the credential a request authenticates with, else None.

    One method per request (RFC 6749 §2.3): a client assertion (RFC 7523 §2.2) with no secret
    beside it, or `Authorization: Basic` with no body secret and no other body `client_id`,
    or body credentials. `basic` is the decoded header, `client_id` and `client_secret` the
    body parameters, `assertion` its `(client_assertion_type, client_assertion)`, `endpoint`
    the URL name called (an assertion may name it as `aud`). The endpoints answer more than one
    method `invalid_request` before calling this (`views.common.several_client_methods`, RFC
    6749 §5.2); should such a request reach it anyway, it authenticates nothing.
    """
    if assertion is not None:
        return authenticate_assertion_parameters(
            *assertion,
            client_id=client_id or None,
            has_secret=basic is not None or bool(client_secret),
            endpoint=endpoint,
        )
    if basic is not None:
        if client_secret or (client_id and client_id != basic[0]):
            return None
        client_id, client_secret = basic
    return authenticate_client_credentials(client_id, client_secret)


#: Rate-limit scope of token issuance, counted per application.
ISSUANCE_SCOPE = "oauth-issuance:client"
#: The global per-application limit, for applications without a quota of their own.
ISSUANCE_SETTING = "PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE"


class SlowDown(errors.OAuth2Error):
    """429 with `Retry-After`: the application asked for more tokens than its rate allows."""

    error = "slow_down"
    status_code = 429

    def __init__(self, wait: int, **kwargs):
        super().__init__(description=f"Too many requests. Retry after {wait} seconds.", **kwargs)
        self.wait = wait

    @property
    def headers(self):
        return {"Retry-After": str(self.wait)}


def issuance_hot_keys(client_id: str) -> list[str]:
    """Return the issuance counter keys of a claimed (not yet authenticated) client id, for one read,
    with its client snapshot's key (`client_snapshot`): a warm token request makes no SQL statement."""
    return [
        *ratelimit.hot_keys([(ISSUANCE_SCOPE, client_id, ratelimit.per_minute(ISSUANCE_SETTING))]),
        *quota.hot_keys(client_id),
        *client_snapshot.hot_keys(client_id),
    ]


def check_issuance_rate(application: M2MApplication, *, request=None) -> None:
    """Count one token request by an authenticated application; raise SlowDown past its rate.

    The application's own quota (tokens per hour / per day, `tokens.protocol.quota`) takes
    precedence; without one, the global `PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE` applies.
    """
    if quota.has_quota(application):
        used_up = quota.exceeded(application)
        if used_up is not None:
            usage.record("m2m_app", application.client_id, application.organization_id, policy.RATE_LIMITED)
            raise SlowDown(used_up.wait, request=request)
        return
    client_id = application.client_id
    limit = ratelimit.per_minute(ISSUANCE_SETTING)
    if limit.limit <= 0:
        return
    if ratelimit.hit(ISSUANCE_SCOPE, client_id, limit) > limit.limit:
        # Counted like a quota's refusal (docs/usage.md: going over either is `rate_limited`).
        usage.record("m2m_app", client_id, application.organization_id, policy.RATE_LIMITED)
        raise SlowDown(ratelimit.retry_after(ISSUANCE_SCOPE, client_id, limit) or limit.window)


class UnauthorizedClient(errors.UnauthorizedClientError):
    """400 `unauthorized_client` (RFC 6749 §5.2): the client may not be used from this address."""

    description = "This client may not be used from this address."


def check_client_policy(application: M2MApplication, *, request=None) -> None:
    """Apply the application's runtime policy (credentials.policy) to the request being served.

    Raise `UnauthorizedClient` for an address outside its allowlist and `SlowDown` past its
    rate limit (the response carries the RateLimit fields either way).
    """
    _check_policy(application, kind="m2m_app", ident=application.client_id, request=request)


def _check_address(credential, *, kind: str, ident: str, request=None) -> None:
    """Raise `UnauthorizedClient` for a request from outside the credential's allowlist (counted
    in its usage as `ip_denied`); spend nothing."""
    if not credential.allowed_ips:
        return
    context = current_request_context()
    if not policy.ip_allowed(credential.allowed_ips, context.ip if context is not None else None):
        usage.record(kind, ident, credential.organization_id, policy.IP_DENIED)
        raise UnauthorizedClient(request=request)


def _check_policy(credential, *, kind: str, ident: str, request=None, check_ip: bool = True) -> None:
    if not (check_ip and credential.allowed_ips) and not credential.rate_limit:
        return
    context = current_request_context()
    refused = policy.refusal(
        kind=kind,
        ident=ident,
        allowed_ips=credential.allowed_ips,
        rate_limit=credential.rate_limit,
        ip=context.ip if context is not None else None,
        check_ip=check_ip,
    )
    if refused is None:
        return
    usage.record(kind, ident, credential.organization_id, refused.code)
    if refused.code == policy.IP_DENIED:
        raise UnauthorizedClient(request=request)
    raise SlowDown(refused.wait, request=request)


class M2MValidator(OAuth2Validator):
    """Validate client-credentials requests against `ClientSecret` and the application's policy."""

    def client_authentication_required(self, request, *args, **kwargs):
        return True

    def authenticate_client(self, request, *args, **kwargs):
        """Authenticate by Basic (preferred) or body credentials, or by a client assertion (RFC 7523 §2.2)."""
        basic = _basic_credentials(request)
        request.portal_used_basic = basic is not None
        result = authenticate_client_parameters(
            basic=basic,
            client_id=request.client_id or "",
            client_secret=getattr(request, "client_secret", None) or "",
            assertion=assertion_parameters(dict(request.decoded_body or [])),
            endpoint="oauth-token",
        )
        if result is None:
            return False
        request.client, credential = result
        # The credential that minted the token: a secret (`csid`), a public key (`ckid`) or a
        # federated identity (`fed`).
        is_key = isinstance(credential, ClientPublicKey)
        is_federated = isinstance(credential, FederatedIdentity)
        request.portal_client_key = credential if is_key else None
        request.portal_federated_identity = credential if is_federated else None
        request.portal_client_secret = None if is_key or is_federated else credential
        return self._authenticated(request)

    @staticmethod
    def _authenticated(request) -> bool:
        request.client_id = request.client.client_id
        note_credential("m2m_client", request.client_id)
        client = request.client
        # A trust has a runtime policy of its own (where its workloads call from, how often), on
        # top of its application's.
        identity = getattr(request, "portal_federated_identity", None)
        # Every allowlist first, then the counted limits: only an authenticated client calling
        # from where it may spends its application's budget (its rate limit, then the issuance
        # quota, whose refusal then carries the RateLimit fields too), so nobody else can.
        _check_address(client, kind="m2m_app", ident=client.client_id, request=request)
        if identity is not None:
            _check_address(identity, kind=FEDERATED_KIND, ident=identity.public_id, request=request)
        _check_policy(client, kind="m2m_app", ident=client.client_id, request=request, check_ip=False)
        if identity is not None:
            _check_policy(
                identity, kind=FEDERATED_KIND, ident=identity.public_id, request=request, check_ip=False
            )
        check_issuance_rate(client, request=request)
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        return False

    def validate_client_id(self, client_id, request, *args, **kwargs):
        return False

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        return grant_type == "client_credentials" and client.allows_grant_type(
            M2MApplication.GRANT_CLIENT_CREDENTIALS
        )

    def _allowed_scopes(self, request) -> list[str]:
        if not hasattr(request, "portal_allowed_scopes"):
            client = request.client
            # The application acts for its owner: scopes beyond the owner's current role are
            # never granted (portal.authz), whatever the application was once given.
            names = getattr(client, "portal_scope_names", None)  # read with the client (_LiveSecretsQuery)
            if names is None:
                names = list(client.allowed_scopes.values_list("name", flat=True))
            allowed = authz.effective_scopes(
                names,
                client.owner_role
                if hasattr(client, "owner_role")
                else role_of(client.owner_id, client.organization_id),
            )
            identity = getattr(request, "portal_federated_identity", None)
            if identity is not None:
                # A trust is a credential with an owner of its own: its tokens act for that owner
                # too, as they are now (tokens.protocol.authentication bounds them the same way).
                allowed &= authz.effective_scopes(names, role_of(identity.owner_id, identity.organization_id))
            request.portal_allowed_scopes = sorted(allowed)
        return request.portal_allowed_scopes

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        """Return every scope the application may hold (a request without `scope`)."""
        return self._allowed_scopes(request)

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        """Check the requested scopes, then pick the audience from `resource` (RFC 8707).

        oauthlib reads `scope=` as one empty scope; it means no scope asked for (RFC 6749 §3.2).
        A scope asked twice is granted once (a scope is a set, §3.3), as token exchange does.
        """
        asked = list(dict.fromkeys(scope for scope in scopes if scope))
        request.scopes = scopes = asked or self._allowed_scopes(request)
        if not set(scopes) <= set(self._allowed_scopes(request)):
            client = request.client
            usage.record("m2m_app", client.client_id, client.organization_id, "insufficient_scope")
            return False
        request.portal_audience = resolve_audience(request)
        return True

    def save_bearer_token(self, token, request, *args, **kwargs):
        """Store nothing: the JWT is self-contained and revocation is by `jti` (RFC 9068).

        Called once a token is issued: count the issuance (credentials.usage).
        """
        client = request.client
        usage.record("m2m_app", client.client_id, client.organization_id, "valid", scopes=request.scopes)
        record_client_use(
            getattr(request, "portal_client_secret", None) or getattr(request, "portal_client_key", None)
        )
        if quota.has_quota(client):
            quota.count_issued(client)
        return None
