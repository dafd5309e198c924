"""One organisation with one of everything an owner can see on the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from credentials.api_keys.services import api_key_request
from credentials.governance.org_policy import policy_update
from credentials.webhooks.services import webhook_endpoint_create
from portal.models import Role
from portal.services.organizations import invitation_create
from tests.factories import MembershipFactory, UserFactory, make_api_key, make_m2m_app, scope_catalogue
from tokens.clients.services import client_public_key_add
from tokens.federation.services import federated_identity_create


@dataclass
class World:
    organization: object
    owner: object
    member: object
    api_key: object
    app: object
    keyed_app: object
    public_key: object
    endpoint: object
    identity: object
    request: object
    pending_key: object


def build_world(organization, owner) -> World:
    scope_catalogue()
    member = MembershipFactory(
        organization=organization, role=Role.MEMBER, user=UserFactory(email="dev@acme.test")
    ).user
    api_key, _ = make_api_key(organization, owner, name="Billing export")
    app, _ = make_m2m_app(organization, owner, name="Invoice worker")
    keyed_app, _ = make_m2m_app(
        organization, owner, name="Ledger export", auth_method="private_key_jwt", scopes=("orders:read",)
    )
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    public_key = client_public_key_add(application=keyed_app, jwk_or_pem=pem, actor=owner)
    endpoint, _ = webhook_endpoint_create(
        organization=organization,
        url="https://hooks.acme.example/portal",
        event_types=["created"],
        actor=owner,
    )
    identity, _ = federated_identity_create(
        application=app,
        actor=None,
        issuer="https://token.actions.githubusercontent.com",
        subject="repo:acme/api:ref:refs/heads/main",
        preset="github_actions",
    )
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    pending_key, request = api_key_request(
        organization=organization,
        name="Nightly report",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="Nightly report to finance",
    )
    # A second member and two open invitations: rows of the same table, told apart by their buttons.
    MembershipFactory(organization=organization, role=Role.MEMBER, user=UserFactory(email="ops@acme.test"))
    for email in ("sam@acme.test", "maria@acme.test"):
        invitation_create(organization=organization, email=email, role=Role.MEMBER, actor=owner)
    # The request stays pending; new keys no longer need approval (the flows create them directly).
    policy_update(organization=organization, actor=owner, approve_new_api_keys=False)
    return World(
        organization,
        owner,
        member,
        api_key,
        app,
        keyed_app,
        public_key,
        endpoint,
        identity,
        request,
        pending_key,
    )
