"""The credential chooser: three plain questions, one recommended kind, and the comparison table.

A GET form (radio buttons, no JavaScript): the answers are in the query string, so the result
is a page that can be bookmarked, shared and reached by keyboard alone. See docs/choosing.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from credentials.governance import org_policy
from credentials.governance.models import NewApiKeys
from portal.tenancy import authorized

YES_NO = [("yes", _("Yes")), ("no", _("No"))]


def _question(label, help_text) -> forms.ChoiceField:
    """Return an optional yes/no question shown as radio buttons."""
    return forms.ChoiceField(
        label=label, help_text=help_text, choices=YES_NO, widget=forms.RadioSelect, required=False
    )


class ChoiceForm(forms.Form):
    """The three questions; each is optional so a half-answered form still recommends something."""

    static_only = _question(
        _("Is it a quick script, or a third-party tool that only accepts a static key?"),
        _("E.g. a cron job with curl, a no-code tool, a vendor's webhook field that takes one header."),
    )
    oauth = _question(
        _("Can the workload run an OAuth 2.0 client-credentials flow?"),
        _(
            "It asks /oauth/token for a short-lived token and asks again before it expires; most OAuth "
            "libraries do this for you."
        ),
    )
    keeps_private_key = _question(
        _("Does it run in CI or Kubernetes, or anywhere it can keep a private key and sign with it?"),
        _(
            "Then it need not share any secret with the portal: it signs a short assertion with its own "
            "key (private_key_jwt). Where the platform issues its own tokens (GitHub Actions, GitLab CI, "
            "Kubernetes), workload federation removes even that key: add a trust under the application's "
            "Federated identities."
        ),
    )


@dataclass(frozen=True)
class Recommendation:
    kind: str  # "api_key" | "client_secret" | "private_key_jwt"
    title: str
    reason: str


def recommend(static_only: str, oauth: str, keeps_private_key: str) -> Recommendation | None:
    """Return the recommended kind for the answers given, or None before any answer."""
    if not (static_only or oauth or keeps_private_key):
        return None
    if static_only == "yes" or oauth == "no":
        return Recommendation(
            "api_key",
            "An API key",
            "The tool can only send a static secret, so a standing key it sends on every request is what "
            "fits. Give it the fewest scopes, an expiry, and rotate it.",
        )
    if keeps_private_key == "yes":
        return Recommendation(
            "private_key_jwt",
            "An M2M application with private_key_jwt",
            "The workload can run the token flow and sign with its own key: the portal holds only the public "
            "key, so there is no shared secret to leak, and what travels is a token that lives minutes.",
        )
    return Recommendation(
        "client_secret",
        "An M2M application with a client secret",
        "The workload can run the token flow: what travels on every request is a token that lives minutes "
        "and is validated by signature. The client secret that mints tokens is a standing secret too, so "
        "it gets an owner, an expiry, rotation and review like a key.",
    )


#: The comparison table: (row, API key, M2M with a client secret, M2M with private_key_jwt).
COMPARISON = [
    (
        _("What travels on the wire"),
        _("The key itself, on every request; it lives until it expires or is revoked"),
        _("A JWT access token that lives minutes (900 s by default)"),
        _("A JWT access token that lives minutes (900 s by default)"),
    ),
    (
        _("What the service must store"),
        _("The key (a standing secret)"),
        _("The client id and secret (a standing secret that mints tokens)"),
        _("Its own private key; the portal holds only the public key"),
    ),
    (
        _("How it is validated"),
        _("Central lookup: a keyed digest, by the portal (or /api/v1/keys/verify)"),
        _("Locally, by signature against the JWKS (or introspection)"),
        _("Locally, by signature against the JWKS (or introspection)"),
    ),
    (
        _("How it is revoked"),
        _("Revoke the key: refused everywhere within a second"),
        _("Revoke the secret or the application: its tokens stop at introspection, expire in minutes"),
        _("Revoke the key or the application: its tokens stop at introspection, expire in minutes"),
    ),
    (
        _("What review it gets"),
        _("Owner, approval, expiry, rotation with overlap, last use, periodic review"),
        _("The same, for the application and each of its secrets"),
        _("The same, for the application and each of its keys"),
    ),
]


@authorized("org.view")
def credential_new(request: HttpRequest) -> HttpResponse:
    """Ask three questions and recommend a kind of credential, with the comparison table (skippable)."""
    form = ChoiceForm(request.GET or None)
    answers = form.cleaned_data if form.is_bound and form.is_valid() else {}
    recommendation = recommend(
        answers.get("static_only", ""), answers.get("oauth", ""), answers.get("keeps_private_key", "")
    )
    policy = org_policy.policy_for(request.organization)
    api_key_rules = {environment: policy.new_api_keys(environment) for environment in ("live", "test")}
    return render(
        request,
        "credentials/governance/credential_new.html",
        {
            "form": form,
            "recommendation": recommendation,
            "comparison": COMPARISON,
            "live_api_keys": api_key_rules["live"],
            "test_api_keys": api_key_rules["test"],
            "NewApiKeys": NewApiKeys,
        },
    )
