"""The cut-over of an API key moved to an M2M application: its use since, the quiet period, the revoke.

After a move (`tokens.clients.moves.api_key_move_to_m2m_app`) the key keeps working. Its page
then shows how much the key is still used, from the usage buckets (credentials.usage), and once
it has gone unused for the quiet period its owner chose (`ApiKey.cutover_quiet_hours`) offers a
one-click revoke through `api_key_revoke`. With `ApiKey.cutover_auto_revoke`, the
`complete_cutovers` command (from cron; in-process under DEBUG after the usage roll-up) revokes
it by itself. The application is read through the reverse side of
`M2MApplication.moved_from_key` (`moved_to_application`), so nothing here imports `tokens`.

The quiet period starts at the later of the move and the key's last use; a use is any request
that presented the key with its secret (every metered outcome but `invalid_secret`, which
anyone who knows the key id can cause), or its `last_used_at`.

The cut-over judges the integration, not the one key: a key moved after a rotation (a successor)
shares its integration with the keys it replaced (its `lineage`). Their use counts as the key's,
whether or not they still work (an instance still sending the replaced key has not switched to
the application either), and while one of them still works (its rotation overlap not over) the
key cannot be revoked here: revoking it would leave the integration a working key. That overlap
is never ended for the owner; it ends by itself, or the owner revokes the replaced key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone
from django.utils.timesince import timesince

from credentials import usage
from credentials.api_keys.models import CUTOVER_QUIET_PERIODS, ApiKey
from credentials.api_keys.services import _locked, api_key_revoke
from credentials.governance import approvals
from credentials.governance.common import credential_audit
from credentials.governance.models import CredentialState, CredentialStatus
from credentials.models import UsageBucket
from portal.models import User

logger = logging.getLogger(__name__)

QUIET_HOURS = {hours: str(label) for hours, label in CUTOVER_QUIET_PERIODS}
#: Outcomes that show the integration still presents the key (with its secret).
USE_OUTCOMES = tuple(o for o in usage.OUTCOMES if o != "invalid_secret")
#: How far back hour buckets are read, for the longest quiet period (minute buckets cover 48 hours).
_LOOKBACK = timedelta(hours=max(QUIET_HOURS) + 1)


@dataclass(frozen=True)
class Cutover:
    """Where a moved key's cut-over stands at `now`."""

    application: Any
    quiet_hours: int
    auto_revoke: bool
    #: Uses in the last hour and the last 24 hours, counted from the minute buckets.
    last_hour: int
    last_day: int
    #: The end of the key's last known use (None: none since the usage data's retention).
    last_use: datetime | None
    #: When the key has been quiet for the quiet period, unless it is used again.
    revocable_at: datetime
    #: Why the key may not be revoked yet, in words; empty when it may.
    blocker: str
    #: The keys this key replaced (its rotation chain before it), newest first; their use is counted.
    replaced: tuple[ApiKey, ...] = ()

    @property
    def ready(self) -> bool:
        """Return whether the cut-over is complete: the one-click revoke may run."""
        return not self.blocker

    @property
    def quiet_label(self) -> str:
        """Return the quiet period in words ("24 hours")."""
        return QUIET_HOURS[self.quiet_hours]


def application_of(api_key: ApiKey):
    """Return the M2M application the key was moved to, or None (reverse of `moved_from_key`).

    A denied or withdrawn move never happened (tokens.clients.moves): the key was not moved.
    """
    application = getattr(api_key, "moved_to_application", None)
    if application is None or application.status == CredentialStatus.DENIED:
        return None
    return application


def first_secret_at(application) -> datetime | None:
    """Return when the application got its first client secret or public key (None: not yet).

    Read through its reverse relations (`secrets`, `public_keys`): the M2M kind is not imported.
    """
    times = [
        rows.order_by("created_at").values_list("created_at", flat=True).first()
        for rows in (application.secrets, application.public_keys)
    ]
    return min((t for t in times if t is not None), default=None)


def replaced_keys(api_key: ApiKey) -> tuple[ApiKey, ...]:
    """Return the keys the key replaced (its rotation chain before it), newest first.

    No query for a key that replaced none (its lineage is its own key id); one otherwise.
    """
    if api_key.lineage == api_key.key_id:
        return ()
    return tuple(
        ApiKey.objects.filter(organization_id=api_key.organization_id, lineage=api_key.lineage)
        .exclude(pk=api_key.pk)
        .only("key_id", "environment", "status", "expires_at", "last_used_at", "organization_id")
        .order_by("-created_at", "-id")
    )


def key_use(
    api_key: ApiKey, *, now: datetime, replaced: tuple[ApiKey, ...] = ()
) -> tuple[int, int, datetime | None]:
    """Return the uses in the last hour and the last 24 hours of the key and the keys it `replaced`,
    and when their last use ended; one query.

    The counts come from the minute buckets (kept 48 hours), so they are exact to the minute;
    an older last use is read from the hour buckets.
    """
    keys = (api_key, *replaced)
    found = UsageBucket.objects.filter(
        organization_id=api_key.organization_id,
        kind="api_key",
        credential_id__in=[key.key_id for key in keys],
        granularity__in=("minute", "hour"),
        start__gte=now - _LOOKBACK,
        outcome__in=USE_OUTCOMES,
        count__gt=0,
    ).aggregate(
        hour=Sum("count", filter=Q(granularity="minute", start__gte=now - timedelta(hours=1))),
        day=Sum("count", filter=Q(granularity="minute", start__gte=now - timedelta(hours=24))),
        last_minute=Max("start", filter=Q(granularity="minute")),
        last_hour=Max("start", filter=Q(granularity="hour")),
    )
    if found["last_minute"] is not None:
        last_use = found["last_minute"] + timedelta(minutes=1)
    elif found["last_hour"] is not None:
        last_use = found["last_hour"] + timedelta(hours=1)
    else:
        last_use = None
    # `last_used_at` is written within a minute of a valid use, before the usage roll-up sees it.
    for key in keys:
        if key.last_used_at is not None and (last_use is None or key.last_used_at > last_use):
            last_use = key.last_used_at
    return found["hour"] or 0, found["day"] or 0, last_use


def cutover_for(api_key: ApiKey, *, now: datetime | None = None) -> Cutover | None:
    """Return the cut-over of a moved key, or None if the key was never moved."""
    application = application_of(api_key)
    if application is None:
        return None
    now = now or timezone.now()
    replaced = replaced_keys(api_key)
    last_hour, last_day, last_use = key_use(api_key, now=now, replaced=replaced)
    quiet = timedelta(hours=api_key.cutover_quiet_hours)
    # The quiet period runs from the latest of the move, the application's first secret or key
    # (before it, under approval, the service cannot switch) and the key's last use.
    started = max(t for t in (application.created, first_secret_at(application), last_use) if t is not None)
    revocable_at = started + quiet
    return Cutover(
        application=application,
        quiet_hours=api_key.cutover_quiet_hours,
        auto_revoke=api_key.cutover_auto_revoke,
        last_hour=last_hour,
        last_day=last_day,
        last_use=last_use,
        revocable_at=revocable_at,
        blocker=_blocker(api_key, application, replaced, last_hour, last_day, last_use, revocable_at, now),
        replaced=replaced,
    )


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _still_works(key: ApiKey, now: datetime) -> bool:
    return key.status == CredentialState.ACTIVE and (key.expires_at is None or key.expires_at > now)


def _blocker(api_key, application, replaced, last_hour, last_day, last_use, revocable_at, now) -> str:
    if api_key.state != CredentialState.ACTIVE:
        return f"The key is {api_key.state}."
    if application.status == CredentialStatus.PENDING:
        return (
            f"The M2M application {application.name} waits for approval: until it is active, the key "
            "is what the service uses."
        )
    if application.status != CredentialStatus.ACTIVE:
        return f"The M2M application {application.name} is {application.status}: the key is what still works."
    working = [key for key in replaced if _still_works(key, now)]
    if working:
        # Revoking this key would not end the integration's keys: the one it replaced still
        # works. Its overlap is the owner's choice (at the rotation): it is not cut short here.
        old = max(
            working, key=lambda key: (key.expires_at is None, key.expires_at or now)
        )  # the last to stop
        until = f"until {old.expires_at:%Y-%m-%d %H:%M} UTC" if old.expires_at else "with no end date"
        return (
            f"The key {old.display_prefix}, which this key replaced, still works {until} (its rotation "
            "overlap), and the service may still send it. The cut-over waits until it stops working "
            "(or is revoked), and counts its use as this key's."
        )
    if revocable_at <= now:
        return ""
    # The counts and the last use are the integration's: say so when they include the replaced keys.
    counting = ""
    if replaced:
        counting = f" (this key or the key{'s' if len(replaced) > 1 else ''} it replaced)"
    if last_hour:
        why = f"Used {_times(last_hour)} in the last hour{counting}."
    elif last_day:
        why = f"Used {_times(last_day)} in the last day{counting}."
    elif last_use is not None and last_use > application.created:
        why = f"Last used {timesince(last_use, now)} ago{counting}."
    else:
        why = f"Moved {timesince(application.created, now)} ago."
    label = QUIET_HOURS[api_key.cutover_quiet_hours]
    return (
        f"{why} It can be revoked here once unused for {label}: "
        f"from {revocable_at:%Y-%m-%d %H:%M} UTC if it is not used again."
    )


# --- services -------------------------------------------------------------------------------


def _moved(api_key: ApiKey):
    application = application_of(api_key)
    if application is None:
        raise ValidationError(
            "This key was not moved to an M2M application, so it has no cut-over.", code="not_moved"
        )
    if api_key.status == CredentialState.REVOKED:
        raise ValidationError("This key is already revoked.", code="revoked")
    return application


def _lock_application(key: ApiKey) -> None:
    """Lock the application the locked key was moved to, and read the key's judgement from that row.

    Key, then application: the order of a move (tokens.clients.moves); the application's own
    writes (its revoke, suspension, secrets) never lock the key, so the two cannot deadlock.
    (`api_key_cutover_complete` locks the key's waiting requests before either.)
    """
    relation = ApiKey._meta.get_field("moved_to_application")  # the M2M kind's reverse of moved_from_key
    application = (
        relation.related_model.objects.select_for_update(of=("self",)).filter(moved_from_key=key).first()
    )
    # `application_of` and `cutover_for` read the relation: they see the locked row, not an earlier read.
    relation.set_cached_value(key, application)


@transaction.atomic
def api_key_cutover_set(
    *, api_key: ApiKey, actor: User | None, quiet_hours: int, auto_revoke: bool, via: str = ""
) -> ApiKey:
    """Choose the quiet period of a moved key's cut-over and whether it ends in an automatic revoke."""
    if quiet_hours not in QUIET_HOURS:
        raise ValidationError(
            {"quiet_hours": f"Choose one of: {', '.join(QUIET_HOURS.values())}."}, code="invalid"
        )
    key = _locked(api_key)
    application = _moved(key)
    if (key.cutover_quiet_hours, key.cutover_auto_revoke) == (quiet_hours, auto_revoke):
        return key  # nothing changed: no audit event
    key.cutover_quiet_hours = quiet_hours
    key.cutover_auto_revoke = auto_revoke
    key.save(update_fields=["cutover_quiet_hours", "cutover_auto_revoke", "updated_at"])
    credential_audit(
        "credentials.api_key.cutover_changed",
        key,
        actor=actor,
        via=via,
        extra={
            "key_id": key.key_id,
            "moved_to": application.client_id,
            "quiet_period": QUIET_HOURS[quiet_hours],
            "auto_revoke": auto_revoke,
        },
    )
    return key


@transaction.atomic
def api_key_cutover_complete(
    *,
    api_key: ApiKey,
    actor: User | None,
    via: str = "",
    automatic: bool = False,
    now: datetime | None = None,
) -> ApiKey:
    """Revoke a moved key whose quiet period has passed (one `revoked` audit event and webhook).

    The key's row lock makes a concurrent revoke (or a second automatic run) find it revoked.
    The application's row lock, taken next, makes the judgement hold until the key is revoked:
    an application revoked or suspended meanwhile waits, or is seen and the key kept.
    `automatic`: the periodic run, which also needs the owner's opt-in (checked under the lock).

    The key's waiting requests are locked first (the revoke closes them): a decision locks its
    request, then the key, so requests → key → application is the one order (docs/governance.md).
    Locked after the key, an approval of a scope increase on it deadlocked with the revoke.
    """
    approvals.waiting_requests_locked([api_key])  # api_key_revoke takes them again: already held
    key = _locked(api_key)
    _lock_application(key)
    application = _moved(key)
    if automatic and not key.cutover_auto_revoke:
        raise ValidationError("The key's owner did not choose the automatic revoke.", code="not_opted_in")
    cutover = cutover_for(key, now=now)
    if not cutover.ready:
        raise ValidationError(cutover.blocker, code="not_quiet")
    reason = (
        f"Cut-over complete: moved to the M2M application {application.client_id} and unused for "
        f"{cutover.quiet_label}{' (automatic revoke)' if automatic else ''}."
    )
    return api_key_revoke(api_key=key, actor=actor, reason=reason, via=via)


def cutovers_complete(*, now: datetime | None = None) -> list[ApiKey]:
    """Revoke every opted-in moved key whose application is active and whose quiet period has passed.

    Safe at any frequency and from concurrent runs: each key is its own transaction under its
    row lock, and a key found revoked (or used again, or opted out) is skipped. A database error
    on one key (a lock timeout, a deadlock PostgreSQL broke) rolls back that key only: it is
    logged and tried again on the next run, and the others are still revoked.
    """
    now = now or timezone.now()
    candidates = (
        ApiKey.objects.filter(
            status=CredentialState.ACTIVE,
            cutover_auto_revoke=True,
            moved_to_application__status=CredentialStatus.ACTIVE,
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("pk")
    )
    revoked = []
    for api_key in candidates.iterator(chunk_size=200):
        try:
            revoked.append(
                api_key_cutover_complete(api_key=api_key, actor=None, via="cutover", automatic=True, now=now)
            )
        except ValidationError:
            continue  # not quiet yet, or changed meanwhile
        except DatabaseError:
            logger.warning(
                "Cut-over of API key %s failed; it is tried again on the next run.",
                api_key.key_id,
                exc_info=True,
            )
            continue
    return revoked


# Under DEBUG (`make run`) requests complete due cut-overs after they roll up usage, so no
# separate process is needed; production runs `complete_cutovers` from cron.
usage.debug_job_register(cutovers_complete)
