"""factory-boy factories for the test suite."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import factory

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.models import Scope
from portal.models import Membership, Organization, Role, User
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication

PASSWORD = "correct-horse-battery-staple"

#: The scope catalogue tests start from (the `scopes` fixture), name -> description. A test that
#: needs another scope (a manage scope, say) adds it with `ScopeFactory(name=...)`.
CATALOGUE = {
    "orders:read": "Read orders",
    "orders:write": "A test scope",
    "billing:read": "A test scope",
    "inventory:read": "A test scope",
    "api_keys:verify": "A test scope",
    "api_keys:manage": "A test scope",
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["email"]

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    password = factory.django.Password(PASSWORD)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ["slug"]

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.Sequence(lambda n: f"Organisation {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.MEMBER


class ScopeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scope
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"things{n}:read")
    description = "A test scope"


class ResourceServerFactory(factory.django.DjangoModelFactory):
    """A catalogue entry (an audience applications may choose); open to every organisation by default."""

    class Meta:
        model = "tokens.ResourceServer"
        django_get_or_create = ["identifier"]
        skip_postgeneration_save = True

    identifier = factory.Sequence(lambda n: f"https://api{n}.example.com")
    name = factory.LazyAttribute(lambda o: o.identifier.split("//", 1)[-1])

    @factory.post_generation
    def scopes(self, create, names, **kwargs):
        if create and names:
            self.scopes.set([ScopeFactory(name=name) for name in names])

    @factory.post_generation
    def organizations(self, create, organizations, **kwargs):
        if create and organizations:
            self.organizations.set(organizations)


def scope_catalogue() -> dict[str, Scope]:
    """Create the tests' scope catalogue (`CATALOGUE`); return the scopes by name."""
    return {name: ScopeFactory(name=name, description=description) for name, description in CATALOGUE.items()}


def make_api_key(
    organization: Organization,
    owner: User | None,
    *,
    name: str = "job",
    scopes: Iterable[str | Scope] = ("orders:read",),
    actor: User | None = None,
    **kwargs,
) -> tuple[ApiKey, str]:
    """Create an active key the way the product does (the audited service); return `(row, plaintext)`.

    The owner creates it unless `actor` says who did.
    """
    return api_key_create(
        organization=organization, name=name, owner=owner, scopes=list(scopes), actor=actor or owner, **kwargs
    )


def make_m2m_app(
    organization: Organization,
    owner: User,
    *,
    name: str = "Billing service",
    scopes: Iterable[str | Scope] = ("orders:read", "orders:write"),
    actor: User | None = None,
    **kwargs,
) -> tuple[M2MApplication, str]:
    """Create an active application through the audited service; return `(row, client secret)`.

    The owner creates it unless `actor` says who did. The secret is "" for a private_key_jwt application.
    """
    return m2m_app_create(
        organization=organization, name=name, owner=owner, scopes=list(scopes), actor=actor or owner, **kwargs
    )


@dataclass
class AppCredentials:
    """An application with what its workload holds: the client id and the one-time secret."""

    application: M2MApplication
    client_id: str
    client_secret: str


def enrol_totp(user) -> str:
    """Give `user` an authenticator app (staff must have one to use the admin); return its secret."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret
