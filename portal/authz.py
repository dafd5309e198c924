"""Who may do what: the one authority table for people and for the credentials that act for them.

Every dashboard view, REST view, admin action and service asks this module, the same way:
`authorize(actor, action, ...)`. A refusal is one exception, `Refused`, with a machine-readable
`code` (`not_manager`, `insufficient_scope`, `exceeds_credential`, `four_eyes`, …) that the REST
layer answers as `403 {"detail": …, "code": …}` and the dashboard as its 403 page.

The authority rule (docs/security.md): a credential acts for its owner and never beyond. Its
power is its scopes ∩ what its owner's *current* membership allows, evaluated on every
request; it never creates, rotates or changes a credential wider than itself; a request is
never decided by its requester, in person or through a credential the requester owns,
created or issued the secret of; changes of who holds power need a recent step-up (people)
and are never made by a credential.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portal.models import MANAGER_ROLES, Role

if TYPE_CHECKING:
    from portal.models import Membership, User
    from portal.principal import Principal

ALL_ROLES = frozenset(Role.values)
MANAGERS = frozenset(str(role) for role in MANAGER_ROLES)
OWNERS = frozenset({str(Role.OWNER)})
NOBODY: frozenset[str] = frozenset()

# --- the portal's own scopes ----------------------------------------------------------------

#: Scopes that act on the portal itself, with the lowest role whose credentials may use them.
#: Every other scope in the catalogue is the customer's API and any role's credential may hold
#: it. A scope listed for managers is stripped from a credential whose owner is (or becomes) a
#: plain member; every portal scope is stripped from one whose owner is no longer a member.
PORTAL_SCOPES: dict[str, frozenset[str]] = {
    "api_keys:verify": ALL_ROLES,
    "api_keys:manage": ALL_ROLES,
    "m2m_apps:manage": ALL_ROLES,
    "inventory:read": ALL_ROLES,
    "usage:read": ALL_ROLES,
    "webhooks:manage": MANAGERS,
    "requests:decide": MANAGERS,
}


def scope_allowed(scope: str, role: str | None) -> bool:
    """Return whether a credential owned by someone with `role` may hold `scope`."""
    roles = PORTAL_SCOPES.get(scope)
    if roles is None:
        return True
    return role is not None and role in roles


def effective_scopes(scopes: Iterable[str], role: str | None) -> frozenset[str]:
    """Return the scopes a credential may use now: its own, bounded by its owner's current role."""
    return frozenset(s for s in scopes if scope_allowed(s, role))


def scopes_beyond_role(scopes: Iterable[str], role: str | None) -> list[str]:
    """Return the scopes an owner with `role` may not give a credential, sorted."""
    return sorted(s for s in set(scopes) if not scope_allowed(s, role))


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Who may do one action.

    `roles`: roles that may do it to anything of the organisation. `own_roles`: roles that may
    do it to what is their own (a credential they own, a request they made, themselves).
    `scope`: the scope a credential needs, or a tuple of scopes any one of which will do
    (None: only a person, never a credential).
    `step_up`: a person needs a recent sign-in or second factor.
    """

    description: str
    roles: frozenset[str] = MANAGERS
    own_roles: frozenset[str] = NOBODY
    scope: str | tuple[str, ...] | None = None
    step_up: bool = False
    staff_only: bool = False
    #: Other actions the actor must also be allowed on the same target (e.g. moving an API key
    #: to an M2M application also creates an application for the key's owner).
    also: tuple[str, ...] = ()


def _credential_rules(kind: str, one: str, many: str, scope: str) -> dict[str, Rule]:
    own = {"roles": MANAGERS, "own_roles": ALL_ROLES, "scope": scope}
    return {
        f"{kind}.view": Rule(f"See the organisation's {many}", roles=ALL_ROLES, scope=scope),
        f"{kind}.create": Rule(
            f"Create (or, where approval is required, request) {one}; for someone else: managers",
            step_up=True,
            **own,
        ),
        f"{kind}.update": Rule(f"Rename or describe {one}", **own),
        f"{kind}.rotate": Rule(
            f"Rotate the secret of {one}, or add or remove one of its keys", step_up=True, **own
        ),
        f"{kind}.revoke": Rule(f"Revoke {one} or one of its secrets", **own),
        f"{kind}.issue": Rule(
            f"Generate the first secret of {one} once approved (its owner only: the secret is shown to them)",
            roles=NOBODY,
            own_roles=ALL_ROLES,
            scope=scope,
            step_up=True,
        ),
        f"{kind}.recertify": Rule(f"Review {one}, optionally narrowing its scopes", **own),
        f"{kind}.scopes": Rule(f"Narrow the scopes of {one}", **own),
        f"{kind}.scopes_widen": Rule(f"Widen the scopes of {one}", step_up=True, **own),
        f"{kind}.reassign": Rule(f"Give {one} another owner", step_up=True),
        f"{kind}.restore": Rule(
            f"Restore {one} suspended as orphaned or overdue for review (staff restore any, in the admin)",
            step_up=True,
        ),
        f"{kind}.policy": Rule(
            f"Change the runtime policy (IP allowlist, rate limit) of {one}", step_up=True, **own
        ),
    }


RULES: dict[str, Rule] = {
    **_credential_rules("api_key", "an API key", "API keys", "api_keys:manage"),
    **_credential_rules("m2m_app", "an M2M application", "M2M applications", "m2m_apps:manage"),
    **_credential_rules("federated_id", "a federated identity", "federated identities", "m2m_apps:manage"),
    "federated_id.test": Rule(
        "Check a pasted external token against a trust (nothing is issued, stored or logged)",
        own_roles=ALL_ROLES,
    ),
    "api_key.move": Rule(
        "Move an API key to a new M2M application (same owner, scopes, environment; shows its secret "
        "once): also needs `m2m_app.create` for the key's owner",
        own_roles=ALL_ROLES,
        scope="api_keys:manage",
        step_up=True,
        also=("m2m_app.create",),
    ),
    "api_key.verify": Rule(
        "Verify the organisation's API keys centrally (credentials; resource servers: any organisation's)",
        roles=ALL_ROLES,
        scope="api_keys:verify",
    ),
    "inventory.read": Rule("Read the credential inventory", roles=ALL_ROLES, scope="inventory:read"),
    "usage.read": Rule(
        "Read the usage of the organisation's credentials", roles=ALL_ROLES, scope="usage:read"
    ),
    "requests.read": Rule(
        "See every credential request (members: the ones they made)",
        own_roles=ALL_ROLES,
        scope=("inventory:read", "requests:decide"),
    ),
    "requests.decide": Rule("Approve or deny a credential request", scope="requests:decide", step_up=True),
    "requests.cancel": Rule("Withdraw a request you made", roles=NOBODY, own_roles=ALL_ROLES),
    "webhooks.manage": Rule(
        "See webhook endpoints and deliveries; send a test; retry", scope="webhooks:manage"
    ),
    "webhooks.change": Rule(
        "Add, change, delete a webhook endpoint or rotate its secret", scope="webhooks:manage", step_up=True
    ),
    "requests.queue": Rule("See the approvals queue"),
    "requests.withdraw": Rule("Deny a request and revoke its credential from the approvals queue"),
    "policy.change": Rule("Change the credential policy", step_up=True),
    "members.view": Rule("See the members", roles=ALL_ROLES),
    "members.invite": Rule("Invite someone (any role)", step_up=True),
    "members.invitation_revoke": Rule("Revoke an open invitation", step_up=True),
    "members.role": Rule("Change a member's role", step_up=True),
    "members.remove": Rule("Remove a member (anyone may leave)", own_roles=ALL_ROLES, step_up=True),
    "audit.read": Rule("Read the audit log"),
    "security.view": Rule("See the organisation's sign-in security", step_up=True),
    "security.change": Rule("Change the organisation's sign-in security", roles=OWNERS, step_up=True),
    "org.view": Rule("See the organisation's overview", roles=ALL_ROLES),
    "staff.catalogue": Rule(
        "Add or change a resource server (API) in the audience catalogue",
        roles=NOBODY,
        step_up=True,
        staff_only=True,
    ),
    "staff.flags": Rule(
        "Set an application's staff flags (resource server, API-key exchange, reported client IPs)",
        roles=NOBODY,
        step_up=True,
        staff_only=True,
    ),
}


def rule(action: str) -> Rule:
    """Return the rule of an action; an unknown action is a programming error."""
    try:
        return RULES[action]
    except KeyError:
        raise LookupError(f"No authority rule for {action!r}: add it to portal.authz.RULES.") from None


# --- who acts -------------------------------------------------------------------------------


class Refused(Exception):
    """An action refused by the authority table: `code` for machines, `detail` for people."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Actor:
    """Who acts: a person through their membership, or a credential for its owner.

    `role` is the person's role, or the credential owner's current role (None when the owner is
    no longer a member). `scopes` is None for a person, else the credential's effective scopes.
    """

    user_id: int | None
    role: str | None
    scopes: frozenset[str] | None = None
    credential: str | None = None
    is_staff: bool = False
    recently_authenticated: bool = True

    @property
    def is_credential(self) -> bool:
        return self.scopes is not None


def person(user: User, membership: Membership | None, *, recently_authenticated: bool = True) -> Actor:
    """Return the actor for a signed-in person (membership None: not a member)."""
    return Actor(
        user_id=user.pk,
        role=membership.role if membership is not None else None,
        is_staff=bool(getattr(user, "is_staff", False)),
        recently_authenticated=recently_authenticated,
    )


def machine(principal: Principal, *, role: str | None | object = ...) -> Actor:
    """Return the actor for a credential: its effective scopes, its owner's current role.

    `role`, when given, is the owner's role read afresh; the principal's own is what its
    (briefly cached) verification snapshot said. The scopes are bounded by both.
    """
    if role is ...:
        role = principal.owner_role
    return Actor(
        user_id=principal.owner_id,
        role=role,
        scopes=effective_scopes(principal.scopes, role),
        credential=f"{principal.credential_type}:{principal.credential_id}",
    )


def authorize(
    actor: Actor,
    action: str,
    *,
    owner_id: Any = None,
    own: bool | None = None,
    scopes: Iterable[str] | None = None,
) -> None:
    """Raise `Refused` unless `actor` may do `action`.

    `owner_id` is the owner of the target (or of the credential being created); `own` says
    directly whether the target is the actor's own (a request they made, themselves). `scopes`
    are the scopes the target credential holds or will hold after the action: a credential
    may never create, rotate or change one wider than itself. (That nobody gives a credential
    scopes beyond its owner's role is checked where scopes are written:
    `credentials.governance.ownership.check_owner_may_hold`.)
    """
    the_rule = rule(action)
    if the_rule.staff_only:
        if actor.is_credential or not actor.is_staff:
            raise Refused("staff_only", "Only staff can do this, in the admin.")
    elif actor.is_credential:
        if the_rule.scope is None:
            raise Refused(
                "session_required", "This needs a person signed in to the portal, not a credential."
            )
        if actor.role is None:
            raise Refused(
                "owner_not_member",
                "The credential's owner is no longer a member: it cannot act on the portal.",
            )
        needed = (the_rule.scope,) if isinstance(the_rule.scope, str) else the_rule.scope
        if not actor.scopes.intersection(needed):
            raise Refused(
                "insufficient_scope", "The credential lacks a required scope: " + " or ".join(needed)
            )
    if not the_rule.staff_only:
        is_own = own if own is not None else (owner_id is not None and owner_id == actor.user_id)
        if actor.role is None or not (
            actor.role in the_rule.roles or (is_own and actor.role in the_rule.own_roles)
        ):
            raise Refused(_role_code(the_rule), _role_detail(the_rule, actor))
    if scopes is not None and actor.is_credential:
        wider = sorted(set(scopes) - actor.scopes)
        if wider:
            raise Refused(
                "exceeds_credential",
                "A credential cannot create, rotate or change a credential with scopes it does not "
                "hold itself: " + " ".join(wider),
            )
    for other in the_rule.also:
        authorize(actor, other, owner_id=owner_id, own=own, scopes=scopes)
    if the_rule.step_up and not actor.is_credential and not actor.recently_authenticated:
        raise Refused(
            "step_up_required",
            "Confirm it is you first: re-authenticate in the dashboard, then repeat the request.",
        )


def allowed(actor: Actor, action: str, **target: Any) -> bool:
    """Return whether `authorize` would let the actor go on (for showing or hiding a button)."""
    try:
        authorize(actor, action, **target)
    except Refused:
        return False
    return True


def _role_code(the_rule: Rule) -> str:
    if the_rule.roles == MANAGERS or (not the_rule.roles and not the_rule.own_roles):
        return "not_manager"
    return "not_owner"


def _role_detail(the_rule: Rule, actor: Actor) -> str:
    if actor.role is None:
        return "Only members of the organisation can do this."
    if the_rule.own_roles and the_rule.roles == MANAGERS:
        return "Only its owner or an organisation owner or admin can do this."
    if the_rule.own_roles and not the_rule.roles:
        return "Only the person it belongs to can do this."
    if the_rule.roles == OWNERS:
        return "Only owners of the organisation can do this."
    return "Only owners and admins of this organisation can do that."


# --- four eyes ------------------------------------------------------------------------------


def check_four_eyes(
    *, requester_id: int | None, decider_id: int | None, linked_ids: Iterable[int] = ()
) -> None:
    """Refuse a decision by the requester, in person or through a credential linked to them.

    `linked_ids` are the people behind the deciding credential: its owner, its creator, and
    whoever issued its live secrets or keys.
    """
    if requester_id is None:
        return
    if requester_id == decider_id:
        raise Refused("four_eyes", "You cannot decide on your own request.")
    if requester_id in set(linked_ids):
        raise Refused(
            "four_eyes",
            "The requester owns, created or issued the secret of the deciding credential: "
            "someone else must decide.",
        )


# --- the table as documentation -------------------------------------------------------------


def as_markdown() -> str:
    """Return the authority table as the Markdown docs/security.md holds (a test keeps them equal)."""

    def roles(names: frozenset[str]) -> str:
        return ", ".join(r for r in ("owner", "admin", "member") if r in names) or "—"

    lines = [
        "| action | what | any target | own target | credential scope | step-up |",
        "|---|---|---|---|---|---|",
    ]
    for name, the_rule in RULES.items():
        if the_rule.staff_only:
            who, own = "staff (admin)", "—"
        else:
            who, own = roles(the_rule.roles), roles(the_rule.own_roles)
        if the_rule.scope is None:
            scope = "— (people only)"
        elif isinstance(the_rule.scope, str):
            scope = f"`{the_rule.scope}`"
        else:
            scope = " or ".join(f"`{s}`" for s in the_rule.scope)
        step_up = "yes" if the_rule.step_up else ""
        lines.append(f"| `{name}` | {the_rule.description} | {who} | {own} | {scope} | {step_up} |")
    lines += [
        "",
        "| portal scope | a credential may hold it when its owner is |",
        "|---|---|",
    ]
    for scope, allowed_roles in PORTAL_SCOPES.items():
        lines.append(f"| `{scope}` | {roles(allowed_roles)} |")
    return "\n".join(lines) + "\n"
