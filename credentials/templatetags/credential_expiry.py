"""Template helpers that say when a credential expires, truthfully for every state.

A pending credential has no expiry yet (it starts when its secret is generated), a revoked or
denied one never will, and the policy's maximum lifetime caps what a form may ask for.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from credentials.governance.models import CredentialRequest, RequestType
from credentials.governance.org_policy import policy_for
from portal.templatetags.portal_format import relative_time

register = template.Library()

_ENDED = {"revoked", "denied"}


def _max_days(organization, kind: str) -> int | None:
    policy = policy_for(organization)
    return (
        policy.api_key_max_lifetime_days if kind == "api_key" else policy.client_secret_max_lifetime_days
    ) or None


@register.simple_tag
def credential_expiry(credential, kind: str = "api_key", *, lookup_request: bool = True):
    """Render when `credential` expires: a time, "never", or what happens while it waits or after it ended.

    With `lookup_request` (detail pages), a pending credential names the lifetime its request asked
    for (one query); lists pass False and say only that the expiry starts with the secret.
    """
    status = getattr(credential, "status", "")
    if status in _ENDED:
        return format_html('<span class="muted">— ({})</span>', status)
    if status == "pending":
        days = None
        if lookup_request:
            days = (
                CredentialRequest.objects.filter(
                    kind=kind, object_id=credential.pk, request_type=RequestType.CREATE
                )
                .order_by("-created_at")
                .values_list("lifetime_days", flat=True)
                .first()
            )
            days = days or _max_days(credential.organization, kind)
        if days:
            return format_html("{} days after its secret is generated", days)
        return format_html('<span class="muted">{}</span>', "set when its secret is generated")
    return relative_time(getattr(credential, "expires_at", None), default="never")


@register.simple_tag
def review_due(credential):
    """Render when a credential's review is due; nothing is due for a revoked or denied one."""
    if getattr(credential, "status", "") in _ENDED:
        return format_html('<span class="muted">— ({})</span>', credential.status)
    return relative_time(credential.review_due_at, default="not scheduled")


@register.simple_tag
def expiry_policy(form, organization, kind: str = "api_key") -> str:
    """Fit a form's `expires_in_days` field to the organisation's maximum lifetime (renders nothing).

    Says what an empty field means under the policy, sets the input's `max` and hands the presets
    script (portal.js: 7/30/60/90 days or a date) the cap.
    """
    field = form.fields.get("expires_in_days") if form is not None else None
    if field is None:
        return ""
    cap = _max_days(organization, kind)
    attrs = field.widget.attrs
    attrs["data-expiry-presets"] = ""
    if cap:
        attrs["max"] = cap
        attrs["data-max-days"] = cap
        field.help_text = (
            f"At most {cap} days (your organisation's policy). "
            f"Leave empty for the longest allowed, {cap} days."
        )
    return ""


@register.simple_tag
def credential_policy(organization):
    """Return the credential policy: `{% credential_policy current_organization as policy %}`."""
    return policy_for(organization)
