"""Registry and helpers for the generic URL walks (tests/portal/test_isolation.py, and the
authority matrix in tests/security/test_authority_matrix.py).

Every URL pattern with an `org_slug` is walked. Each other URL kwarg must be registered
here with a function `(organization, user) -> value` that returns an object id belonging
to `organization` (creating the object if needed). An unregistered kwarg fails the walk,
so new pages cannot escape it. Use `URL_KWARG_OVERRIDES[(url_name, kwarg)]` where one
kwarg name means different objects on different URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from portal.models import Invitation, Membership, Organization, Role, User

KwargFactory = Callable[[Organization, User], Any]


def _member_id(organization: Organization, user: User) -> int:
    from tests.factories import MembershipFactory

    membership = Membership.objects.filter(organization=organization, role=Role.MEMBER).first()
    return (membership or MembershipFactory(organization=organization)).pk


def _invitation_id(organization: Organization, user: User) -> int:
    from datetime import timedelta

    from django.utils import timezone

    invitation = Invitation.objects.filter(organization=organization).first()
    if invitation is None:
        invitation = Invitation.objects.create(
            organization=organization,
            email=f"invitee@{organization.slug}.test",
            token_digest=f"isolation-{organization.slug}".ljust(64, "0"),
            pepper_id="1",
            expires_at=timezone.now() + timedelta(days=1),
        )
    return invitation.pk


def _api_key_id(organization: Organization, user: User) -> str:
    from credentials.api_keys.models import ApiKey
    from credentials.api_keys.services import api_key_create

    api_key = ApiKey.objects.filter(organization=organization).first()
    if api_key is None:
        owner = Membership.objects.filter(organization=organization).first().user
        api_key, _plaintext = api_key_create(
            organization=organization, name="isolation", owner=owner, scopes=[], actor=owner
        )
    return api_key.key_id


def _m2m_app(organization: Organization, user: User):
    from tokens.clients.services import m2m_app_create
    from tokens.models import M2MApplication

    application = M2MApplication.objects.filter(
        organization=organization, token_endpoint_auth_method="client_secret_basic"
    ).first()
    if application is None:
        application, _secret = m2m_app_create(
            organization=organization, name=f"{organization.slug} service", owner=user, actor=user
        )
    return application


def _app_id(organization: Organization, user: User) -> int:
    return _m2m_app(organization, user).pk


def _secret_id(organization: Organization, user: User) -> int:
    return _m2m_app(organization, user).secrets.first().pk


def _public_key_id(organization: Organization, user: User) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tokens.clients.services import client_public_key_add, m2m_app_create
    from tokens.models import ClientPublicKey, M2MApplication

    key = ClientPublicKey.objects.filter(application__organization=organization).first()
    if key is None:
        application = M2MApplication.objects.filter(
            organization=organization, token_endpoint_auth_method="private_key_jwt"
        ).first()
        if application is None:
            application, _none = m2m_app_create(
                organization=organization,
                name=f"{organization.slug} keyed service",
                owner=user,
                actor=user,
                auth_method="private_key_jwt",
            )
        pem = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        key = client_public_key_add(application=application, jwk_or_pem=pem, actor=user)
    return key.pk


def _keyed_app_id(organization: Organization, user: User) -> int:
    from tokens.models import ClientPublicKey

    _public_key_id(organization, user)
    return ClientPublicKey.objects.filter(application__organization=organization).first().application_id


def _request_id(organization: Organization, user: User) -> int:
    from credentials.api_keys.services import api_key_request
    from credentials.governance.models import CredentialRequest

    request = CredentialRequest.objects.filter(organization=organization).first()
    if request is None:
        _key, request = api_key_request(
            organization=organization,
            name="isolation request",
            owner=user,
            scopes=[],
            requester=user,
            justification="isolation walk",
        )
    return request.pk


def _webhook_endpoint(organization: Organization, user: User):
    from credentials.webhooks.models import WebhookEndpoint
    from credentials.webhooks.services import webhook_endpoint_create

    endpoint = WebhookEndpoint.objects.filter(organization=organization).order_by("pk").first()
    if endpoint is None:
        endpoint, _secret = webhook_endpoint_create(
            organization=organization,
            url=f"https://hooks.{organization.slug}.example/portal",
            event_types=["created"],
            actor=user,
        )
    return endpoint


def _endpoint_id(organization: Organization, user: User) -> int:
    return _webhook_endpoint(organization, user).pk


def _delivery_id(organization: Organization, user: User) -> int:
    from credentials.webhooks.services import webhook_endpoint_ping

    endpoint = _webhook_endpoint(organization, user)
    delivery = endpoint.deliveries.first() or webhook_endpoint_ping(endpoint=endpoint, actor=user)
    return delivery.pk


def _identity_id(organization: Organization, user: User) -> int:
    from tokens.federation.services import federated_identity_create
    from tokens.models import FederatedIdentity

    identity = FederatedIdentity.objects.filter(organization=organization).first()
    if identity is None:
        identity, _request = federated_identity_create(
            application=_m2m_app(organization, user),
            actor=None,
            issuer="https://token.actions.githubusercontent.com",
            subject=f"repo:{organization.slug}/api:ref:refs/heads/main",
            preset="github_actions",
        )
    return identity.pk


URL_KWARG_FACTORIES: dict[str, KwargFactory] = {
    "key_id": _api_key_id,
    "member_id": _member_id,
    "invitation_id": _invitation_id,
    "app_id": _app_id,
    "secret_id": _secret_id,
    "public_key_id": _public_key_id,
    "request_id": _request_id,
    "endpoint_id": _endpoint_id,
    "delivery_id": _delivery_id,
    "identity_id": _identity_id,
}

URL_KWARG_OVERRIDES: dict[tuple[str, str], KwargFactory] = {
    # The key's own application, so the walk reaches the key lookup, not the app's 404.
    ("org-app-key-revoke", "app_id"): _keyed_app_id,
    ("api-org-m2m-app-public-key-revoke", "app_id"): _keyed_app_id,
}


# --- walking the URL configuration --------------------------------------------------------------


def walk_urls(
    patterns=None, prefix_ns: str = "", prefix_route: str = ""
) -> Iterator[tuple[str, URLPattern, str]]:
    """Yield `(name, pattern, route)` for every named URL pattern, with its full route."""
    patterns = get_resolver().url_patterns if patterns is None else patterns
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix_ns}{entry.namespace}:" if entry.namespace else prefix_ns
            yield from walk_urls(entry.url_patterns, ns, prefix_route + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{prefix_ns}{entry.name}", entry, prefix_route + str(entry.pattern)


def url_params(name: str) -> set[str]:
    """Return the kwargs a URL name takes (every pattern of that name)."""
    resolver = get_resolver()
    params: set[str] = set()
    for entry in resolver.reverse_dict.getlist(name.split(":")[-1]):
        for _route, p in entry[0]:
            params |= set(p)
    return params


def org_scoped_url_names() -> list[str]:
    """Return the names of every URL pattern that takes an `org_slug`."""
    return sorted({name for name, _pattern, _route in walk_urls() if "org_slug" in url_params(name)})


def confirm_page_url_names() -> list[str]:
    """Return the organisation URLs whose GET asks before their POST acts (`portal.confirm.confirm_page`)."""
    return sorted(
        {
            name
            for name, pattern, _route in walk_urls()
            if getattr(pattern.callback, "confirm_page", False) and "org_slug" in url_params(name)
        }
    )


def url_kwargs(name: str, org_slug: str, objects_org: Organization, user: User, **given: Any) -> dict:
    """Return reverse() kwargs for a URL: `org_slug`, then `given`, then the registered factories."""
    kwargs = {"org_slug": org_slug, **given}
    for param in sorted(url_params(name) - {"org_slug", "format"} - set(given)):
        factory = URL_KWARG_OVERRIDES.get((name, param)) or URL_KWARG_FACTORIES.get(param)
        assert factory is not None, f"URL {name!r} takes {param!r}: register it in tests/isolation.py"
        kwargs[param] = factory(objects_org, user)
    return kwargs


def two_organizations() -> tuple[Organization, Organization, User, User]:
    """Return Alpha and Bravo, each with an owner (a@alpha.test, b@bravo.test) and a member."""
    from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

    org_a = OrganizationFactory(slug="alpha", name="Alpha")
    org_b = OrganizationFactory(slug="bravo", name="Bravo")
    user_a = MembershipFactory(
        organization=org_a, role=Role.OWNER, user=UserFactory(email="a@alpha.test")
    ).user
    user_b = MembershipFactory(
        organization=org_b, role=Role.OWNER, user=UserFactory(email="b@bravo.test")
    ).user
    MembershipFactory(organization=org_b, role=Role.MEMBER)
    MembershipFactory(organization=org_a, role=Role.MEMBER)
    return org_a, org_b, user_a, user_b
