"""Token exchange (RFC 8693): a trusted gateway trades a customer's API key for a short-lived JWT.

The gateway is an M2M application that staff allowed to exchange (`may_exchange_api_keys`).
It authenticates like at the client credentials grant and presents the API key as the
`subject_token`; the answer is an RFC 9068 access token whose `sub` names the key
(`api_key:<key id>`), whose organisation, scopes and `environment` are the key's, and whose
`act` claim names the gateway (§4.1). Back-end services then validate only JWTs. See docs/m2m.md.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from dataclasses import dataclass

from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase

from credentials import policy, usage
from credentials.api_keys.verification import Verification, api_key_record_use, api_key_verify
from portal import authz
from portal.infra.request_context import current_request_context
from tokens.protocol.audience import resolve_audience

log = logging.getLogger(__name__)

#: The `grant_type` of a token exchange request (RFC 8693 §2.1).
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: This portal's token type URI for an API key as the subject token (RFC 8693 §3 allows others).
API_KEY_TOKEN_TYPE = "urn:identity-portal:params:oauth:token-type:api-key"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
#: Subject token types accepted; an API key presented as a generic access token is accepted too.
SUBJECT_TOKEN_TYPES = (API_KEY_TOKEN_TYPE, ACCESS_TOKEN_TYPE)
#: Token types a gateway may ask for: the issued JWT access token is both.
REQUESTED_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)
#: The `sub` of an exchanged token is this prefix and the key's public id.
SUBJECT_PREFIX = "api_key:"

# One description for every unusable subject token, so the answer never says which check failed
# (and never repeats the key).
UNUSABLE_SUBJECT = "The subject_token is not a usable API key."
#: The parameter a gateway staff trust (`may_report_client_ip`) reports its client's address in.
CLIENT_IP_PARAMETER = "client_ip"
#: The longest IP address text accepted (an IPv6 address with a zone index).
MAX_CLIENT_IP_LENGTH = 64
# A usable key refused by its own runtime policy (credentials.policy), for the gateway to pass on.
KEY_IP_DENIED = "The subject_token may not be used from this client address."
KEY_RATE_LIMITED = "The subject_token's request limit is used up. Retry after {wait} seconds."


def key_id_of(claims: dict) -> str | None:
    """Return the API key id an exchanged token was issued for, or None for any other token."""
    sub = claims.get("sub")
    if isinstance(sub, str) and sub.startswith(SUBJECT_PREFIX) and isinstance(claims.get("act"), dict):
        return sub[len(SUBJECT_PREFIX) :]
    return None


@dataclass(frozen=True)
class Exchange:
    """What the issued token says about the key it stands for (read by `tokens.signing.issuing`)."""

    key: dict
    lifetime: int
    issued_token_type: str

    @property
    def subject(self) -> str:
        return SUBJECT_PREFIX + self.key["key_id"]

    @property
    def organization_slug(self) -> str:
        return self.key["organization_slug"]

    @property
    def environment(self) -> str:
        """Return the key's environment (`live` | `test`): the token's `environment` claim.

        Without it a token for an `ipk_test_` key would look exactly like a live key's, and a
        service could not refuse test traffic in production.
        """
        return self.key["environment"]


def _param(request, name: str) -> str:
    """Return a body parameter; one sent without a value counts as omitted (RFC 6749 §3.2)."""
    for key, value in request.decoded_body or []:
        if key == name:
            return value or ""
    return ""


def _invalid_request(request, description: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(description=description, request=request)


class TokenExchangeGrant(GrantTypeBase):
    """RFC 8693 §2 for one case: an API key in, a short-lived RFC 9068 JWT out.

    Errors (§2.2.2): a failed client is `invalid_client` (401); a client staff did not allow
    is `unauthorized_client`; a bad or unusable subject token, an unsupported token type or
    an actor token is `invalid_request`; scopes beyond the key's are `invalid_scope`; a
    resource or audience the gateway may not request is `invalid_target`.

    The key's runtime policy applies (§2.2.2: a subject token "unacceptable based on policy" is
    `invalid_request`): its IP allowlist against the `client_ip` the gateway reports when staff
    trust it to (`may_report_client_ip`), else against the address the request comes from (the
    gateway's own), and its rate limit, each exchange being a use of the key.
    """

    def create_token_response(self, request, token_handler):
        """Return the §2.2.1 response (with `issued_token_type`) or a §2.2.2 error."""
        headers = self._get_default_headers()
        try:
            self.validate_token_request(request)
        except errors.OAuth2Error as exc:
            headers.update(exc.headers)
            return headers, exc.json, exc.status_code
        token = token_handler.create_token(request, refresh_token=False)
        token["issued_token_type"] = request.portal_exchange.issued_token_type
        token["scope"] = " ".join(request.scopes)  # always, even when it is every scope of the key
        self.request_validator.save_token(token, request)
        key_ip = request.portal_key_ip
        usage.record_api_key(request.portal_api_key, scopes=request.scopes, ip=key_ip or "")
        # The key was used: its last-used time moves (at most once a minute, after the response).
        api_key_record_use(request.portal_api_key, ip=key_ip)
        return headers, json.dumps(token), 200

    def validate_token_request(self, request):
        """Authenticate the gateway, check its permission, then the subject token, scopes and target."""
        if request.grant_type != GRANT_TYPE:
            raise errors.UnsupportedGrantTypeError(request=request)
        self.validate_client_confidential(request)
        if not request.client.may_exchange_api_keys:
            raise errors.UnauthorizedClientError(
                description="This client may not exchange API keys; staff allow gateways.", request=request
            )
        if _param(request, "actor_token") or _param(request, "actor_token_type"):
            raise _invalid_request(
                request, "Actor tokens are not supported: the authenticated client is the actor."
            )
        subject_token_type = _param(request, "subject_token_type")
        if not subject_token_type:
            raise _invalid_request(request, "The 'subject_token_type' parameter is missing.")
        if subject_token_type not in SUBJECT_TOKEN_TYPES:
            raise _invalid_request(request, f"Unsupported subject_token_type; use {API_KEY_TOKEN_TYPE}.")
        requested_token_type = _param(request, "requested_token_type") or ACCESS_TOKEN_TYPE
        if requested_token_type not in REQUESTED_TOKEN_TYPES:
            raise _invalid_request(request, f"Unsupported requested_token_type; use {ACCESS_TOKEN_TYPE}.")
        subject_token = _param(request, "subject_token")
        if not subject_token:
            raise _invalid_request(request, "The 'subject_token' parameter is missing.")
        request.portal_key_ip = key_ip = _key_ip(request)
        verification = api_key_verify(subject_token)
        if not verification.valid:
            usage.record_api_key(verification, ip=key_ip or "")
            raise _invalid_request(request, UNUSABLE_SUBJECT)
        _check_key_policy(request, verification, key_ip)
        try:
            self._validate_scopes(request, verification)
        except errors.InvalidScopeError:
            usage.record_api_key(verification, "insufficient_scope", ip=key_ip or "")
            raise
        request.portal_api_key = verification  # before the audience: the catalogue checks the key's org
        request.portal_audience = resolve_audience(request, parameters=("resource", "audience"))
        request.portal_exchange = Exchange(
            key=verification.key,
            lifetime=self._lifetime(request, verification),
            issued_token_type=requested_token_type,
        )

    @staticmethod
    def _validate_scopes(request, verification: Verification) -> None:
        # What the key may use now: its scopes, bounded by its owner's current role (portal.authz).
        held = authz.effective_scopes(verification.key["scopes"], verification.key["owner_role"])
        # Space-delimited (RFC 6749 §3.3); `scope=` alone asks for nothing in particular (§3.2).
        requested = [scope for scope in (request.scope or "").split(" ") if scope]
        if not set(requested) <= set(held):
            raise errors.InvalidScopeError(
                description="The requested scope is wider than the API key's.", request=request
            )
        request.scopes = sorted(set(requested)) if requested else sorted(held)

    @staticmethod
    def _lifetime(request, verification: Verification) -> int:
        lifetime = request.client.exchange_token_lifetime
        expires_at = verification.key["expires_at"]
        if expires_at is not None:
            # A token never outlives the key it stands for.
            lifetime = min(lifetime, max(1, int(expires_at - time.time())))
        return lifetime


def _key_ip(request) -> str | None:
    """Return the address the subject key is used from: the `client_ip` a trusted gateway reports,
    else the request's client address (`PORTAL_TRUSTED_PROXIES`: the gateway's own).

    A `client_ip` from a gateway staff did not trust, or one that is not an IP address, is
    `invalid_request`: never silently ignored, so a gateway cannot believe it is enforced.
    """
    reported = _param(request, CLIENT_IP_PARAMETER).strip()
    if not reported:
        context = current_request_context()
        return context.ip if context else None
    if not request.client.may_report_client_ip:
        raise _invalid_request(
            request,
            f"This client may not report '{CLIENT_IP_PARAMETER}'; staff trust gateways to report client"
            " addresses.",
        )
    try:
        if len(reported) > MAX_CLIENT_IP_LENGTH:
            raise ValueError(reported)
        address = ipaddress.ip_address(reported)
    except ValueError:
        raise _invalid_request(
            request, f"The '{CLIENT_IP_PARAMETER}' parameter is not an IPv4 or IPv6 address."
        ) from None
    # `::ffff:10.0.0.1` is 10.0.0.1, as everywhere else (portal.infra.net): one client, one address.
    return str(getattr(address, "ipv4_mapped", None) or address)


def _check_key_policy(request, verification: Verification, ip: str | None) -> None:
    """Apply the subject key's allowlist and rate limit; a refusal is `invalid_request` (RFC 8693 §2.2.2)."""
    key = verification.key
    if not key.get("allowed_ips") and not key.get("rate_limit"):
        return
    refused = policy.refusal(
        kind="api_key",
        ident=policy.api_key_budget(key),
        allowed_ips=key.get("allowed_ips"),
        rate_limit=key.get("rate_limit"),
        ip=ip,
        respond=False,  # the response's RateLimit fields describe the gateway's own limit
    )
    if refused is None:
        return
    usage.record_api_key(verification, refused.code, ip=ip or "")
    if refused.code == policy.IP_DENIED:
        raise _invalid_request(request, KEY_IP_DENIED)
    raise _invalid_request(request, KEY_RATE_LIMITED.format(wait=refused.wait))
