"""The audience of a new token (RFC 8707 `resource`) and the resource server's terms for it."""

from __future__ import annotations

from django.conf import settings
from oauth2_provider.oauth2_validators import is_valid_resource_uri
from oauthlib.oauth2.rfc6749 import errors

from tokens.catalogue import token_terms


def resolve_audience(request, *, parameters: tuple[str, ...] = ("resource",)) -> str:
    """Return the token's audience from `resource` (RFC 8707) or, if allowed, `audience` (RFC 8693 §2.1).

    None asked for: the default audience. Otherwise one value in all (one resource per token),
    the default audience or one of the client's allowed audiences, exactly; a `resource` must
    also be an absolute URI without a fragment. Anything else is `invalid_target`. A parameter
    sent without a value counts as omitted (RFC 6749 §3.2).

    The audience must also be open to the token's organisation in the resource-server
    catalogue (else `invalid_target`), and `request.scopes` are kept to the scopes it accepts:
    scopes asked for that it does not accept are `invalid_scope`; a request without `scope`
    gets the client's scopes it accepts, and `invalid_scope` if there is none.
    """
    audience = _requested_audience(request, parameters)
    _apply_resource_server_terms(request, audience)
    return audience


def _apply_resource_server_terms(request, audience: str) -> None:
    exchanged = getattr(
        request, "portal_api_key", None
    )  # tokens.protocol.exchange: the token names the key's org
    organization_id = exchanged.key["organization_id"] if exchanged else request.client.organization_id
    terms = token_terms(audience=audience, organization_id=organization_id)
    if terms is None:
        raise errors.CustomOAuth2Error(
            error="invalid_target",
            description="The resource is not one this client may request tokens for.",
            request=request,
        )
    if not terms.scopes:
        return
    asked = [scope for scope in (request.scope or "").split(" ") if scope]
    refused = sorted(scope for scope in asked if not terms.accepts(scope))
    if refused:
        raise errors.InvalidScopeError(
            description="The resource does not accept the scope(s): " + " ".join(refused) + ".",
            request=request,
        )
    request.scopes = [scope for scope in request.scopes or [] if terms.accepts(scope)]
    if not request.scopes:
        raise errors.InvalidScopeError(
            description="None of this client's scopes is accepted by the resource.", request=request
        )


def _requested_audience(request, parameters: tuple[str, ...]) -> str:
    asked = [(name, value) for name, value in (request.decoded_body or []) if name in parameters and value]
    targets = {value for _name, value in asked}
    if not targets:
        return settings.PORTAL_DEFAULT_AUDIENCE
    if len(targets) > 1:
        raise errors.CustomOAuth2Error(
            error="invalid_target", description="Request one resource per token.", request=request
        )
    target = targets.pop()
    named_as_resource = any(name == "resource" for name, _value in asked)
    if (named_as_resource and not _is_resource_uri(target)) or target not in request.client.audiences:
        raise errors.CustomOAuth2Error(
            error="invalid_target",
            description="The resource is not one this client may request tokens for.",
            request=request,
        )
    return target


def _is_resource_uri(value: str) -> bool:
    """RFC 8707 §2: an absolute URI without a fragment; one `urlsplit` cannot parse is not one."""
    try:
        return is_valid_resource_uri(value)
    except ValueError:  # an unclosed IPv6 bracket, a host that is not valid after NFKC…
        return False
