"""The kinds of governed credential: each app registers its model and a few adapters, once, at start-up.

The governance code (policy, approvals, ownership, reviews, inventory, notices) only talks
to a `GovernedKind`, so both credential kinds go through the same code, and `credentials`
never imports `tokens` (which registers M2M applications from its AppConfig.ready).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet
from django.urls import reverse

from portal.models import Organization, User

STANDING = "standing"
TOKEN_MINTING = "token-minting"
#: No stored secret at all: an external issuer's short-lived token is the credential.
FEDERATED = "federated"


@dataclass(frozen=True)
class SecretMatch:
    """A presented secret whose keyed digest matched one of a credential's secrets (leak reports)."""

    object_id: int  # the credential's primary key
    secret_id: int | None = None  # the matching secret row, for kinds holding several secrets
    secret_hint: str = ""  # the non-secret start (and end) of it, as the dashboard shows it
    secret_live: bool = True  # whether that secret still authenticates (not revoked or expired)


@dataclass(frozen=True)
class MovedLink:
    """One end of a move between kinds, as the inventory shows it beside the other end."""

    direction: str  # "to" (this credential was moved to the other) | "from"
    kind: str  # the other credential's kind key
    pk: int
    ref: str  # its public identifier
    name: str


@dataclass(frozen=True)
class KindPolicy:
    """Which `OrganizationPolicy` columns hold one kind's settings; the columns carry the defaults.

    The columns stay on the one policy row (read by the policy form, the admin, the REST API
    and `set_api_key_policy` by name); a kind names its own, so governance reads a kind's
    setting through `OrganizationPolicy.kind_setting` without naming the kind.
    """

    approve_new: str  # boolean column: a new credential of this kind needs an approval
    review_interval_days: str  # days between owner reviews
    max_lifetime_days: str  # the longest lifetime of its secret in days (empty column: no maximum)
    #: Columns of the kind's own rules on new credentials ("the policy on kinds"): changing one
    #: re-flags the kind's existing credentials (`GovernedKind.policy_violations`).
    new_credential_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class GovernedKind:
    """What governance needs to know about one credential kind."""

    key: str  # a short name (≤ 16 characters), stored in requests, notices and usage rows
    label: str  # as people read it
    lifecycle: str  # STANDING | TOKEN_MINTING | FEDERATED
    audit_prefix: str  # "credentials.api_key"
    model: type[models.Model]
    touch_field: str  # the model's auto_now column
    ref_attr: str  # the public identifier shown in lists ("key_id", "client_id")
    url_kwarg: str  # the dashboard URL kwarg naming one row ("key_id", "app_id")
    lookup_field: str  # the model field that URL kwarg matches: "pk", or `ref_attr` ("key_id")
    #: Return the organisation's rows annotated with the inventory columns (see selectors).
    inventory_queryset: Callable[[Organization | None], QuerySet]
    scopes_of: Callable[[Any], list[str]]
    #: Return {pk: sorted scope names} for many rows in one query.
    scopes_for: Callable[[Iterable[int]], dict[int, list[str]]]
    #: Store new scope names on the row (validated against the catalogue).
    set_scopes: Callable[[Any, list[str]], None]
    #: Give a pending, approved row its first secret; return (plaintext, audit extra).
    issue_secret: Callable[[Any, User | None, Any], tuple[str, dict[str, Any]]]
    #: Revoke through the kind's own service (one audit event there).
    revoke: Callable[[Any, User | None, str], Any]
    #: Run inside the transaction after every governance change (API keys drop their cached
    #: verification snapshot now and store a fresh one after commit).
    changed: Callable[[Any], None]
    #: Narrow an inventory queryset to rows holding one scope.
    filter_scope: Callable[[QuerySet, str], QuerySet]
    #: Recognise a presented secret of this kind (format, then a digest lookup): a match or None.
    match_secret: Callable[[str], SecretMatch | None] = lambda raw: None
    #: The public reference (`ref_attr`) written inside a secret of this kind, by its format alone
    #: (no lookup), or None: a search box given a whole secret keeps only that (never the secret).
    ref_in_secret: Callable[[str], str | None] = lambda raw: None
    #: Revoke only the matched secret (kinds with several secrets per credential); None revokes
    #: the whole credential through `revoke`. (credential, match, actor) -> None.
    revoke_secret: Callable[[Any, SecretMatch, User | None], None] | None = None
    #: The user ids behind a machine principal of this kind (its owner, its creator, whoever
    #: issued its live secrets or keys), for the four-eyes rule; empty when it is not this kind's.
    people_behind: Callable[[Any], set[int]] = lambda principal: set()
    #: The `ref_attr` value of this kind's credential a machine principal presents (the key
    #: itself, the application whose token it is, the key a token was exchanged for): no
    #: credential approves widening itself. None when it is not this kind's.
    presented_ref: Callable[[Any], str | None] = lambda principal: None
    #: Its policy settings (`KindPolicy`); None with `policy_key` naming the kind whose settings
    #: apply (a federated identity follows its M2M applications' approval, review and lifetime).
    policy: KindPolicy | None = None
    policy_key: str = ""
    #: The dashboard URL names: the prefix given to governance.urls.credential_patterns (a row's
    #: page is `<url_name>-detail`), and the page that gives an approved, pending credential its
    #: first secret (or activates it).
    url_name: str = ""
    issue_url_name: str = ""
    #: Audit verbs of this kind that are webhook events ({"created": "created", …}); an audit
    #: event whose extra data says `activated` (a first credential issued) is sent as `created`.
    webhook_events: dict[str, str] = field(default_factory=dict)
    #: Refuse (ValidationError) a new credential the organisation's policy on kinds no longer
    #: allows, e.g. a pending one approved after the policy changed.
    #: (credential, requested lifetime in days or None) -> None.
    check_new: Callable[[Any, int | None], None] = lambda credential, lifetime_days: None
    #: The review date a pending credential carries over from what it replaces (an application
    #: moved from an API key: the key's), or None; its first secret then keeps the earlier of it
    #: and a full review interval. (credential) -> datetime | None.
    carried_review_due: Callable[[Any], datetime | None] = lambda credential: None
    #: The organisation's working rows the policy would not allow to be created today (they are
    #: flagged, never broken). (policy) -> QuerySet, or None for a kind the policy never limits.
    policy_violations: Callable[[Any], QuerySet] | None = None
    #: Which rows are live credentials, on which the organisation may require an IP allowlist
    #: (`OrganizationPolicy.require_allowed_ips_for_live`): a test on one row (saved or not) and
    #: the same as a filter. None for a kind without a runtime policy of its own: the
    #: organisation's runtime-policy rules (allowlist, default and ceiling of rate limits) skip it.
    is_live: Callable[[Any], bool] | None = None
    live_rows: Q | None = None
    #: Whether a working row was replaced by a successor (a rotated API key in its overlap): it
    #: gets no more scopes, its successor is the one in use. (credential) -> bool.
    superseded: Callable[[Any], bool] = lambda credential: False
    #: The credential of another kind each row was moved to or from, for many rows in one query:
    #: {pk: MovedLink}. An API key moved to an M2M application and that application name each other.
    moved_links: Callable[[Iterable[int]], dict[int, MovedLink]] = lambda ids: {}

    def detail_path(self, org_slug: str, pk: int, ref: str) -> str:
        """Return the dashboard path of one row from its primary key and its public reference."""
        value = pk if self.lookup_field == "pk" else ref
        return reverse(f"{self.url_name}-detail", kwargs={"org_slug": org_slug, self.url_kwarg: value})


_KINDS: dict[str, GovernedKind] = {}


def register(kind: GovernedKind) -> None:
    """Register a credential kind (idempotent, so tests and reloads may call it again)."""
    _KINDS[kind.key] = kind


def get_kind(key: str) -> GovernedKind:
    """Return a registered kind or raise LookupError."""
    try:
        return _KINDS[key]
    except KeyError:
        raise LookupError(f"unknown credential kind {key!r}") from None


def kind_of(obj: models.Model) -> GovernedKind:
    """Return the kind of a credential row."""
    for kind in _KINDS.values():
        if isinstance(obj, kind.model):
            return kind
    raise LookupError(f"{type(obj).__name__} is not a governed credential")


def credential_path(credential: models.Model) -> str:
    """Return the dashboard path of a credential row."""
    kind = kind_of(credential)
    return kind.detail_path(credential.organization.slug, credential.pk, getattr(credential, kind.ref_attr))


def policy_key_of(key: str) -> str:
    """Return the kind whose organisation-policy settings apply to kind `key` (itself by default)."""
    kind = _KINDS.get(key)
    return (kind.policy_key or kind.key) if kind is not None else key


def policy_of(key: str) -> KindPolicy:
    """Return the policy settings that apply to kind `key` (its own, or those of its `policy_key` kind)."""
    kind = get_kind(policy_key_of(key))
    if kind.policy is None:
        raise LookupError(f"credential kind {key!r} declares no policy settings")
    return kind.policy


def new_credential_rule_fields() -> tuple[str, ...]:
    """Return every kind's policy-on-kinds columns (a change to one re-flags existing credentials)."""
    return tuple(name for kind in all_kinds() if kind.policy for name in kind.policy.new_credential_rules)


def webhook_event_of(action: str) -> str | None:
    """Return the webhook event a kind declares for an audit action (`<audit_prefix>.<verb>`), if any."""
    for kind in _KINDS.values():
        prefix = kind.audit_prefix + "."
        if action.startswith(prefix):
            return kind.webhook_events.get(action[len(prefix) :])
    return None


def all_kinds() -> list[GovernedKind]:
    """Return every registered kind, API keys first."""
    return sorted(_KINDS.values(), key=lambda k: k.key)


def presented_credentials(principal: Any) -> list[models.Model]:
    """Return the credential rows a machine principal presents, of every kind: the API key itself,
    the application whose token it is, the key a token was exchanged for (`presented_ref`)."""
    rows = []
    for kind in all_kinds():
        ref = kind.presented_ref(principal)
        # From the principal's organisation, as every customer-facing read: a token exchanged
        # for a key acts for the key's organisation, not the gateway application's.
        found = kind.model.objects.filter(organization_id=principal.organization_id, **{kind.ref_attr: ref})
        row = found.first() if ref else None
        if row is not None:
            rows.append(row)
    return rows


def ref_in_secret(text: str) -> str | None:
    """Return the public reference inside `text` if it is a whole secret of some kind, else None."""
    for kind in all_kinds():
        ref = kind.ref_in_secret(text)
        if ref:
            return ref
    return None
