"""The authority matrix, generated from the URL configuration and the table in portal.authz.

(a) Every URL is classified: an organisation's dashboard page names an action of
`portal.authz.RULES` (`authz_action`), a REST view is a `portal.permissions.AuthorizedView` that
maps each routed action or method to a rule, or it is one of the few endpoints listed here as
outside the table. A new endpoint without an entry fails.

(b) Every organisation URL × every kind of principal (owner, admin and member sessions; a member's
API key holding each portal scope a member may hold; the owner's key and the owner's M2M token
holding every scope; another organisation's key and token and owner; a staff user who is not a
member) answers as `portal.authz.authorize` says, against targets owned by the organisation's
owner and, for credentials, by the member too. A refusal is a 403 with the rule's code (REST) or
a 403 page (dashboard), another organisation's URL a 404, and on every refusal nothing changed:
no tracked row, no audit row, no secret in the response. Each request runs in a savepoint that is
rolled back, so the world is built once per test.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import reverse
from rest_framework.authentication import SessionAuthentication

from credentials.api_keys.authentication import ApiKeyAuthentication
from credentials.api_keys.services import api_key_request
from credentials.governance.models import CredentialRequest
from portal import authz
from portal.models import Membership, Role
from portal.permissions import Authorized, AuthorizedView, OrganizationAccess
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    ScopeFactory,
    UserFactory,
    enrol_totp,
    make_api_key,
    make_m2m_app,
)
from tests.isolation import url_kwargs, url_params, walk_urls
from tests.security.authority import counts, describe_change, leaked, state
from tests.tokens.conftest import basic
from tokens.clients.services import client_public_key_add
from tokens.federation.services import federated_identity_create
from tokens.models import M2MApplication
from tokens.protocol.authentication import AccessTokenAuthentication

# --- (a) every URL is classified ----------------------------------------------------------------

#: Machine endpoints outside the table, each with why. Anything new must be classified here or
#: be an authorised view.
MACHINE_ENDPOINTS = {
    "api-whoami": "describes the calling credential, whatever its scopes",
    "secret-scanning-reports": "a secret-scanning partner's signed reports (no principal of ours)",
    "oauth-token": "RFC 6749: client authentication, scopes bounded by the owner (tokens.protocol.oauth)",
    "oauth-introspect": "RFC 7662: resource servers, a staff flag (staff.flags in the admin)",
    "oauth-revoke": "RFC 7009: a client revokes its own tokens",
    "oauth-jwks": "public keys",
    "oauth-authorization-server-metadata": "public metadata (RFC 8414)",
    "healthz": "liveness, no data",
    "favicon": "a redirect to the static icon",
    "metrics": "Prometheus metrics, no customer data",
    "api-schema": "the OpenAPI document",
    "api-docs": "the OpenAPI viewer",
}
#: Pages of a person, not of an organisation: sign-in and account (allauth), the staff admin
#: (its actions ask `staff.flags`), the organisation picker and accepting an invitation.
PERSONAL_PAGES = {"dashboard", "invitation-accept"}
PERSONAL_PREFIXES = ("accounts/", "admin/")


def view_class(pattern) -> type | None:
    callback = pattern.callback
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def routed_keys(pattern) -> dict[str, str]:
    """Return {HTTP method: key in authz_actions} for a REST URL pattern."""
    cls = view_class(pattern)
    actions = getattr(pattern.callback, "actions", None)
    if actions is not None:
        # DRF adds `head` to a viewset's actions the first time it serves a request: skip it,
        # so the walk is the same whichever tests ran before.
        return {method: key for method, key in actions.items() if method not in ("options", "head")}
    methods = [m for m in cls.http_method_names if m not in ("options", "head") and hasattr(cls, m)]
    return {m: m for m in methods}


def classification_problems(urls, params=url_params) -> list[str]:
    """Return every URL that neither names a rule nor is listed as outside the table."""
    problems = []
    for name, pattern, route in urls:
        if name in MACHINE_ENDPOINTS or name in PERSONAL_PAGES or route.startswith(PERSONAL_PREFIXES):
            continue
        cls = view_class(pattern)
        if cls is not None and issubclass(cls, AuthorizedView):
            permissions = set(cls.permission_classes)
            wanted = OrganizationAccess if "org_slug" in params(name) else Authorized
            if wanted not in permissions:
                problems.append(f"{name}: {cls.__name__} must use {wanted.__name__}")
            for method, key in routed_keys(pattern).items():
                action = cls.authz_actions.get(key)
                if action is None:
                    problems.append(f"{name}: {cls.__name__} names no action for {key!r} ({method})")
                elif action not in authz.RULES:
                    problems.append(f"{name}: {cls.__name__}.{key} names {action!r}, not in RULES")
            continue
        action = getattr(pattern.callback, "authz_action", None)
        if cls is None and "org_slug" in params(name) and action is not None:
            for named in {action, *getattr(pattern.callback, "authz_actions", {}).values()}:
                named = named.format(**(pattern.default_args or {}))
                if named not in authz.RULES:
                    problems.append(f"{name}: {named!r} is not in portal.authz.RULES")
            continue
        problems.append(f"{name} ({route}): no authority action and not listed as outside the table")
    return problems


def test_every_url_names_an_authority_rule_or_is_listed_outside_the_table():
    assert classification_problems(walk_urls()) == []


def test_the_lists_outside_the_table_name_real_urls():
    names = {name for name, _pattern, _route in walk_urls()}
    assert set(MACHINE_ENDPOINTS) | PERSONAL_PAGES <= names


def test_the_classification_catches_an_unmapped_endpoint():
    """A new REST action or page without an entry is reported (the check above can fail)."""
    from django.urls import path
    from rest_framework.views import APIView

    class Forgotten(AuthorizedView, APIView):
        permission_classes = [OrganizationAccess]
        authz_actions = {"get": "inventory.read"}

        def get(self, request, org_slug):  # pragma: no cover - never called
            raise AssertionError

        def post(self, request, org_slug):  # pragma: no cover - never called
            raise AssertionError

    def page(request, org_slug):  # pragma: no cover - never called
        raise AssertionError

    urls = [
        ("api-new", path("api/v1/orgs/<slug:org_slug>/new/", Forgotten.as_view(), name="api-new"), "x"),
        ("org-new", path("orgs/<slug:org_slug>/new/", page, name="org-new"), "orgs/x/new/"),
    ]
    problems = classification_problems(urls, params=lambda name: {"org_slug"})
    assert any("api-new" in p and "'post'" in p for p in problems)
    assert any(p.startswith("org-new") for p in problems)
    assert not any("'get'" in p for p in problems)


# --- (b) the world: one organisation, its people and credentials, and outsiders ----------------

PORTAL_SCOPES = sorted(authz.PORTAL_SCOPES)
CUSTOMER_SCOPE = "orders:read"
ALL_SCOPES = [*PORTAL_SCOPES, CUSTOMER_SCOPE]
#: Actions that make or change a credential: a credential may not do them to one wider than itself.
SCOPED_VERBS = {"create", "rotate", "update", "scopes", "scopes_widen", "reassign", "issue", "recertify"}

ALLOW, REFUSE, HIDDEN, UNAUTHENTICATED, LOGIN, DECLINE = (
    "allow",
    "refuse",
    "hidden",
    "unauthenticated",
    "login",
    "decline",
)


@dataclass
class Who:
    """A principal: how it calls, and who it is for the table."""

    label: str
    kind: str  # session | api_key | access_token
    client: Client
    actor: authz.Actor | None  # None: not a member of the organisation (404)
    home_actor: authz.Actor | None = None  # for URLs outside any organisation
    linked: set[int] = field(default_factory=set)  # people behind it, for four eyes
    on_dashboard: bool = True  # walked on dashboard pages too (sessions, and one key and token)


@dataclass
class Target:
    """One choice of URL kwargs, and what the table needs to know about it."""

    label: str
    kwargs: dict[str, Any]
    owner_id: int | None = None
    scopes: list[str] | None = None
    requester_id: int | None = None
    member_user_id: int | None = None


def _session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _token(app: M2MApplication, secret: str) -> str:
    response = Client().post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, secret)
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def _machine_actor(owner_id: int, role: str | None, scopes, label: str) -> authz.Actor:
    return authz.Actor(
        user_id=owner_id, role=role, scopes=authz.effective_scopes(scopes, role), credential=label
    )


def _pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class World:
    organization: Any
    owner: Any
    member: Any
    principals: list[Who]
    targets: dict[str, list[Target]]
    secrets: set[str]


def build_world() -> World:
    for name in ALL_SCOPES:
        ScopeFactory(name=name)
    org = OrganizationFactory(slug="acme", name="Acme Inc")
    other = OrganizationFactory(slug="globex", name="Globex Corp")
    owner = MembershipFactory(
        organization=org, role=Role.OWNER, user=UserFactory(email="owner@acme.test")
    ).user
    admin = MembershipFactory(
        organization=org, role=Role.ADMIN, user=UserFactory(email="admin@acme.test")
    ).user
    member = MembershipFactory(
        organization=org, role=Role.MEMBER, user=UserFactory(email="dev@acme.test")
    ).user
    outsider = MembershipFactory(
        organization=other, role=Role.OWNER, user=UserFactory(email="owner@globex.test")
    ).user
    staff = UserFactory(email="staff@portal.test", is_staff=True)
    enrol_totp(staff)  # staff must have a second factor, or every page asks them to enrol first
    secrets: set[str] = set()

    def key(owner_user, scopes, name, organization=org):
        row, plaintext = make_api_key(organization, owner_user, name=name, scopes=scopes)
        secrets.add(plaintext)
        return row, plaintext

    def app(owner_user, scopes, name, organization=org, **kwargs):
        row, secret = make_m2m_app(organization, owner_user, name=name, scopes=scopes, **kwargs)
        if secret:
            secrets.add(secret)
        return row, secret

    def person(user, role):
        membership = Membership(user=user, role=role) if role else None
        return authz.person(user, membership)

    principals = [
        Who("owner session", "session", _session(owner), person(owner, Role.OWNER)),
        Who("admin session", "session", _session(admin), person(admin, Role.ADMIN)),
        Who("member session", "session", _session(member), person(member, Role.MEMBER)),
        Who("staff session (not a member)", "session", _session(staff), None),
        Who("other organisation's owner", "session", _session(outsider), None),
    ]
    for scope in PORTAL_SCOPES:
        if not authz.scope_allowed(scope, Role.MEMBER):
            continue
        _row, plaintext = key(member, [scope], f"member {scope}")
        actor = _machine_actor(member.pk, Role.MEMBER, [scope], f"member key {scope}")
        principals.append(
            Who(
                f"member's key [{scope}]",
                "api_key",
                Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"),
                actor,
                actor,
                {member.pk},
                on_dashboard=False,
            )
        )
    _row, plaintext = key(owner, ALL_SCOPES, "owner everything")
    actor = _machine_actor(owner.pk, Role.OWNER, ALL_SCOPES, "owner key")
    principals.append(
        Who(
            "owner's key [all]",
            "api_key",
            Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"),
            actor,
            actor,
            {owner.pk},
        )
    )
    owner_app, owner_app_secret = app(owner, ALL_SCOPES, "owner service")
    token = _token(owner_app, owner_app_secret)
    actor = _machine_actor(owner.pk, Role.OWNER, ALL_SCOPES, "owner token")
    principals.append(
        Who(
            "owner's M2M token [all]",
            "access_token",
            Client(HTTP_AUTHORIZATION=f"Bearer {token}"),
            actor,
            actor,
            {owner.pk},
        )
    )
    _row, plaintext = key(outsider, ALL_SCOPES, "globex everything", organization=other)
    principals.append(
        Who(
            "other organisation's key",
            "api_key",
            Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"),
            None,
            _machine_actor(outsider.pk, Role.OWNER, ALL_SCOPES, "globex key"),
            on_dashboard=False,
        )
    )
    globex_app, globex_secret = app(outsider, ALL_SCOPES, "globex service", organization=other)
    principals.append(
        Who(
            "other organisation's M2M token",
            "access_token",
            Client(HTTP_AUTHORIZATION=f"Bearer {_token(globex_app, globex_secret)}"),
            None,
            _machine_actor(outsider.pk, Role.OWNER, ALL_SCOPES, "globex token"),
            on_dashboard=False,
        )
    )

    # Targets: the owner's (every scope) and the member's (what a member's key may manage).
    owner_key, _ = key(owner, ALL_SCOPES, "owner target")
    member_key, _ = key(member, ["api_keys:manage"], "member target")
    owner_target_app, _ = app(owner, ALL_SCOPES, "owner target app")
    member_target_app, _ = app(member, ["m2m_apps:manage"], "member target app")
    keyed = {}
    for who, scopes in ((owner, ALL_SCOPES), (member, ["m2m_apps:manage"])):
        keyed_app, _ = app(who, scopes, f"{who.email} keyed", auth_method="private_key_jwt")
        keyed[who.pk] = (
            keyed_app,
            client_public_key_add(application=keyed_app, jwk_or_pem=_pem(), actor=who),
        )
    requests = {}
    for who in (owner, member):
        _pending, requests[who.pk] = api_key_request(
            organization=org,
            name=f"{who.email} wants",
            owner=who,
            scopes=[CUSTOMER_SCOPE],
            requester=who,
            justification="matrix",
        )

    def app_scopes(application):
        return sorted(application.allowed_scopes.values_list("name", flat=True))

    targets = {
        "key_id": [
            Target("owner's key", {"key_id": k.key_id}, k.owner_id, sorted(k.scopes))
            for k in (owner_key, member_key)
        ],
        "app_id": [
            Target(
                f"{a.owner.email}'s app",
                {"app_id": a.pk, "secret_id": a.secrets.first().pk},
                a.owner_id,
                app_scopes(a),
            )
            for a in (owner_target_app, member_target_app)
        ],
        "public_key_id": [
            Target(
                f"{a.owner.email}'s keyed app",
                {"app_id": a.pk, "public_key_id": k.pk},
                a.owner_id,
                app_scopes(a),
            )
            for a, k in keyed.values()
        ],
        "request_id": [
            Target(f"request by {r.requester.email}", {"request_id": r.pk}, requester_id=r.requester_id)
            for r in requests.values()
        ],
        "identity_id": [
            Target(f"{i.owner.email}'s trust", {"identity_id": i.pk}, i.owner_id)
            for i in (
                federated_identity_create(
                    application=app,
                    actor=app.owner,
                    issuer="https://token.actions.githubusercontent.com",
                    subject=f"repo:{org.slug}/{app.pk}:ref:refs/heads/main",
                    preset="github_actions",
                )[0]
                for app in (owner_target_app, member_target_app)
            )
        ],
        "member_id": [
            Target(f"{m.user.email}'s membership", {"member_id": m.pk}, member_user_id=m.user_id)
            for m in Membership.objects.filter(organization=org, user__in=[owner, member]).select_related(
                "user"
            )
        ],
    }
    targets["key_id"][1].label = "member's key"
    return World(org, owner, member, principals, targets, secrets)


def targets_for(world: World, name: str) -> list[Target]:
    params = url_params(name) - {"org_slug", "format"}
    for kwarg in ("public_key_id", "identity_id", "key_id", "app_id", "request_id", "member_id"):
        if kwarg in params:
            chosen = world.targets[kwarg]
            break
    else:
        chosen = [Target("—", {})]
    result = []
    for target in chosen:
        given = {k: v for k, v in target.kwargs.items() if k in params}
        kwargs = url_kwargs(name, world.organization.slug, world.organization, world.owner, **given)
        result.append(
            Target(
                target.label,
                kwargs,
                target.owner_id,
                target.scopes,
                target.requester_id,
                target.member_user_id,
            )
        )
    return result


# --- what the table says -----------------------------------------------------------------------

#: Bodies sent to REST actions (everything else gets `{}`); `creates` is the credential a create makes.
REST_BODIES = {
    ("api-org-api-key-list", "post"): {"name": "matrix", "scopes": ["api_keys:manage"]},
    ("api-org-api-key-detail", "patch"): {"name": "renamed"},
    ("api-org-api-key-revoke", "post"): {"reason": "matrix"},
}
CREATES = {("api-org-api-key-list", "post"): ["api_keys:manage"]}


def accepted_kinds(cls) -> set[str]:
    kinds = set()
    for auth in cls.authentication_classes:
        if issubclass(auth, SessionAuthentication):
            kinds.add("session")
        if issubclass(auth, ApiKeyAuthentication):
            kinds.add("api_key")
        if issubclass(auth, AccessTokenAuthentication):
            kinds.add("access_token")
    return kinds


def expected(
    who: Who,
    action: str,
    target: Target,
    *,
    rest: bool,
    accepts: set[str],
    org_scoped: bool,
    creates: list[str] | None = None,
) -> tuple[str, str | None]:
    """Return (outcome, refusal code) as the authority table has it for this principal and target."""
    if not rest and who.kind != "session":
        return LOGIN, None
    if rest and who.kind not in accepts:
        return UNAUTHENTICATED, None
    actor = who.actor if org_scoped else who.home_actor
    if actor is None:
        return HIDDEN, None
    the_rule = authz.rule(action)
    verb = action.split(".", 1)[1]
    try:
        # The gate: may this actor do the action at all (to something of their own, if anyone may)?
        authz.authorize(actor, action, own=bool(the_rule.own_roles))
        if creates is not None:
            authz.authorize(actor, action, owner_id=actor.user_id, scopes=creates)
        if target.owner_id is not None:
            scoped = actor.is_credential and verb in SCOPED_VERBS
            authz.authorize(actor, action, owner_id=target.owner_id, scopes=target.scopes if scoped else None)
        if target.requester_id is not None:
            own = target.requester_id == actor.user_id
            if rest and not own and not authz.allowed(actor, "requests.read"):
                return HIDDEN, None  # a member (or their credential) sees only their own requests
            if action == "requests.cancel" and not own:
                # The table says not_owner; the service refuses first, with its documented code
                # (docs/governance.md): only the requester may withdraw a request.
                raise authz.Refused("not_requester", "")
            if action == "requests.decide":
                if own:
                    raise authz.Refused("own_request", "")
                authz.check_four_eyes(
                    requester_id=target.requester_id, decider_id=actor.user_id, linked_ids=who.linked
                )
        if target.member_user_id is not None and action == "members.remove":
            authz.authorize(actor, action, own=target.member_user_id == actor.user_id)
    except authz.Refused as exc:
        if not rest and exc.code in ("own_request", "four_eyes", "not_requester"):
            return DECLINE, exc.code  # the dashboard says so in a message; nothing happens
        return REFUSE, exc.code
    return ALLOW, None


# --- (b) the walk ------------------------------------------------------------------------------


@dataclass
class Cell:
    name: str
    method: str
    url: str
    action: str
    target: Target
    rest: bool
    accepts: set[str]
    org_scoped: bool
    body: dict
    creates: list[str] | None = None


def cells(world: World) -> list[Cell]:
    result = []
    for name, pattern, _route in walk_urls():
        cls = view_class(pattern)
        org_scoped = "org_slug" in url_params(name)
        if cls is not None and issubclass(cls, AuthorizedView):
            for method, key in routed_keys(pattern).items():
                for target in targets_for(world, name) if org_scoped else [Target("—", {})]:
                    result.append(
                        Cell(
                            name,
                            method,
                            reverse(name, kwargs=target.kwargs or None),
                            cls.authz_actions[key],
                            target,
                            True,
                            accepted_kinds(cls),
                            org_scoped,
                            REST_BODIES.get((name, method), {}),
                            CREATES.get((name, method)),
                        )
                    )
        elif org_scoped and getattr(pattern.callback, "authz_action", None):
            by_method = getattr(pattern.callback, "authz_actions", {})
            for method in ("get", "post"):
                action = by_method.get(method, pattern.callback.authz_action)
                action = action.format(**(pattern.default_args or {}))
                for target in targets_for(world, name):
                    result.append(
                        Cell(
                            name,
                            method,
                            reverse(name, kwargs=target.kwargs),
                            action,
                            target,
                            False,
                            {"session"},
                            True,
                            {},
                        )
                    )
    return result


def run(client: Client, cell: Cell, secrets: set[str], baseline, outcome: str):
    """Make one request in a savepoint that is rolled back; return (response, problems).

    On a refusal nothing may change: every tracked row where the view ran (refused or declined by
    the table), the row counts where the request was turned away before any view code.
    """
    problems = []
    with transaction.atomic():
        if cell.rest:
            response = getattr(client, cell.method)(cell.url, cell.body, content_type="application/json")
        else:
            response = getattr(client, cell.method)(cell.url, cell.body)
        if outcome in (REFUSE, DECLINE):
            after = state()
            if after != baseline.rows:
                problems.append(f"changed: {describe_change(baseline.rows, after)}")
        elif outcome != ALLOW and counts() != baseline.counts:
            problems.append("changed: row counts")
        if outcome != ALLOW:
            found = leaked(response.content, secrets)
            if found:
                problems.append(f"secret in the response: {found}")
        transaction.set_rollback(True)
    if outcome == ALLOW:
        cache.clear()  # verification snapshots of rolled-back changes must not outlive them
    return response, problems


@dataclass
class Baseline:
    rows: tuple
    counts: tuple


def check(response, outcome: str, code: str | None, rest: bool) -> str | None:
    """Return what is wrong with a response for the expected outcome, or None."""
    status = response.status_code
    if status >= 500:
        return f"answered {status}"
    if outcome == ALLOW:
        return None if status not in (401, 403, 404) else f"allowed by the table, answered {status}"
    if outcome == HIDDEN:
        return None if status == 404 else f"expected 404, answered {status}"
    if outcome == UNAUTHENTICATED:
        return None if status == 401 else f"expected 401 (the view does not take it), answered {status}"
    if outcome == LOGIN:
        location = response.get("Location", "")
        return (
            None
            if status == 302 and location.startswith(reverse("login"))
            else (f"expected a redirect to sign in, answered {status} {location}")
        )
    if outcome == DECLINE:
        return None if status in (200, 302, 400) else f"expected the page to decline, answered {status}"
    # REFUSE
    if status != 403:
        return f"refused by the table ({code}), answered {status}"
    if rest:
        if not response.content or not response.get("Content-Type", "").startswith("application/json"):
            kind = response.get("Content-Type")
            return f"refused without a JSON body ({kind!r}: {response.content[:80]!r})"
        body = response.json()
        if body.get("code") != code or not body.get("detail"):
            return f"refused with code {body.get('code')!r}, the table says {code!r}"
    return None


def walk(world: World, selected) -> tuple[int, list[str]]:
    baseline = Baseline(state(), counts())
    failures, count = [], 0
    for cell in selected:
        for who in world.principals:
            if not cell.rest and not who.on_dashboard:
                continue
            outcome, code = expected(
                who,
                cell.action,
                cell.target,
                rest=cell.rest,
                accepts=cell.accepts,
                org_scoped=cell.org_scoped,
                creates=cell.creates,
            )
            try:
                response, problems = run(who.client, cell, world.secrets, baseline, outcome)
            except Exception as exc:  # noqa: BLE001 - report every cell, not the first failure
                failures.append(
                    f"{cell.method.upper()} {cell.url} [{cell.target.label}] as {who.label}: {exc!r}"
                )
                continue
            count += 1
            if response.status_code == 405:
                break  # not routed for this method (POST-only pages), whoever asks
            wrong = check(response, outcome, code, cell.rest)
            if wrong:
                problems.insert(0, wrong)
            if problems:
                failures.append(
                    f"{cell.method.upper()} {cell.url} ({cell.action}) [{cell.target.label}] as {who.label}: "
                    + "; ".join(problems)
                )
    return count, failures


@pytest.fixture
def world(db, settings):
    settings.PORTAL_STEP_UP_SECONDS = 3600  # force_login is a fresh sign-in; keep it fresh for the walk
    return build_world()


def test_the_matrix_for_the_rest_api(world):
    selected = [c for c in cells(world) if c.rest]
    count, failures = walk(world, selected)
    assert count > 200, count
    assert failures == [], "\n".join(failures)


def test_the_matrix_for_the_dashboard(world):
    selected = [c for c in cells(world) if not c.rest]
    count, failures = walk(world, selected)
    assert count > 400, count
    assert failures == [], "\n".join(failures)


def test_the_matrix_covers_every_rule_used_by_a_url(world):
    """Every action a URL names is walked, with owner's and member's credentials as targets."""
    all_cells = cells(world)
    walked = {c.action for c in all_cells}
    named = {a for a in walked}
    assert {
        "api_key.rotate",
        "m2m_app.rotate",
        "requests.decide",
        "webhooks.change",
        "members.remove",
    } <= named
    labels = {c.target.label for c in all_cells if c.action == "api_key.rotate"}
    assert labels == {"owner's key", "member's key"}
    assert CredentialRequest.objects.filter(organization=world.organization).count() == 2


def test_head_answers_as_get_on_every_rest_view(world):
    """HEAD is GET without a body (RFC 9110 §9.3.2): every GET-able authorised REST view answers HEAD,
    as every principal, with the status GET has (an `authz_actions` names no "head": HEAD asks GET's
    action, portal.permissions.AuthorizedView.authz_action), and no GET-able endpoint outside the
    table answers HEAD with a server error."""
    selected = [cell for cell in cells(world) if cell.rest and cell.method == "get"]
    baseline = Baseline(state(), counts())  # after cells(): building the URLs may create their objects
    failures, count = [], 0
    for cell in selected:
        head = replace(cell, method="head")
        for who in world.principals:
            outcome, _code = expected(
                who, cell.action, cell.target, rest=True, accepts=cell.accepts, org_scoped=cell.org_scoped
            )
            answered = []
            for asked in (cell, head):
                try:
                    response, problems = run(who.client, asked, world.secrets, baseline, outcome)
                except Exception as exc:  # noqa: BLE001 - report every cell, not the first failure
                    response, problems = None, [repr(exc)]
                answered.append(None if response is None else response.status_code)
                failures += [f"{asked.method.upper()} {cell.url} as {who.label}: {p}" for p in problems]
            count += 1
            if None not in answered and (answered[1] >= 500 or answered[1] != answered[0]):
                failures.append(f"HEAD {cell.url} as {who.label}: {answered[1]}, GET answered {answered[0]}")
    owner_key = next(who for who in world.principals if who.label == "owner's key [all]")
    for name, _pattern, _route in walk_urls():
        if name not in MACHINE_ENDPOINTS or url_params(name):
            continue
        url = reverse(name)
        get, head = owner_key.client.get(url), owner_key.client.head(url)
        if get.status_code == 405:
            continue  # POST only (the OAuth endpoints, the leak reports)
        count += 1
        # Never a server error; the plumbing's `require_GET` (healthz, metrics) may refuse HEAD (405).
        if head.status_code >= 500:
            failures.append(f"HEAD {url}: {head.status_code}, GET answered {get.status_code}")
    assert count > 100, count
    assert failures == [], "\n".join(failures)
