"""Create the demo organisation, users and scopes (idempotent; here because the scopes are credentials')."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from credentials.models import Scope
from portal.infra import locks
from portal.management.base import PortalCommand
from portal.models import Membership, Organization, Role, User
from portal.services.organizations import organization_create

DEMO_PASSWORD = "demo-password"
DEMO_SCOPES = [
    ("orders:read", "Read orders"),
    ("orders:write", "Create and change orders"),
    ("customers:read", "Read customer records"),
    ("api_keys:verify", "Verify other API keys centrally (POST /api/v1/keys/verify)"),
    ("api_keys:manage", "Manage the organisation's API keys through the REST API"),
    ("m2m_apps:manage", "Manage the organisation's M2M applications through the REST API"),
    ("inventory:read", "Read the organisation's credential inventory (GET /api/v1/orgs/<slug>/inventory/)"),
    ("usage:read", "Read the usage of the organisation's credentials (GET /api/v1/orgs/<slug>/usage/)"),
    ("webhooks:manage", "Manage the organisation's webhook endpoints through the REST API"),
    ("requests:decide", "Approve or deny the organisation's credential requests through the REST API"),
]


def _serialise_seeds() -> None:
    """Take the seed lock until the transaction ends.

    Each step looks a row up and creates it when missing: two runs at once (two `make run`, an
    entrypoint started twice) both found nothing and the second create failed on a unique
    constraint. In turn, the second finds what the first made.
    """
    locks.advisory_xact_lock(locks.SEED_DEMO)


class Command(PortalCommand):
    help = "Seed demo data: organisation 'acme', its owner and member, and a staff superuser."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Run even when DEBUG is off.")

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo refuses to run with DEBUG off (it creates known passwords). Use --force."
            )
        with transaction.atomic():
            _serialise_seeds()
            self._seed()
        self.stdout.write(self.style.SUCCESS("Demo data ready: owner@acme.example / demo-password"))

    def _user(self, email: str, full_name: str, **extra) -> User:
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=DEMO_PASSWORD, full_name=full_name, **extra)
        return user

    def _seed(self) -> None:
        self._user("admin@portal.example", "Portal Admin", is_staff=True, is_superuser=True)
        owner = self._user("owner@acme.example", "Olivia Owner")
        dev = self._user("dev@acme.example", "Dev Eloper")
        acme = Organization.objects.filter(slug="acme").first()
        if acme is None:
            acme = organization_create(slug="acme", name="Acme Inc", owner=owner, actor=None)
        Membership.objects.get_or_create(user=owner, organization=acme, defaults={"role": Role.OWNER})
        Membership.objects.get_or_create(user=dev, organization=acme, defaults={"role": Role.MEMBER})
        for name, description in DEMO_SCOPES:
            Scope.objects.get_or_create(name=name, defaults={"description": description})
