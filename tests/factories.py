"""factory-boy factories for the test suite."""

from __future__ import annotations

import factory

from credentials.models import Scope
from portal.models import Membership, Organization, Role, User

PASSWORD = "correct-horse-battery-staple"


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


def enrol_totp(user) -> str:
    """Give `user` an authenticator app (staff must have one to use the admin); return its secret."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret
