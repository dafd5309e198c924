"""One submission per form that creates a secret: a reload, a back-and-resend or a double click creates once.

Such a form carries a one-use token (`OnceForm.submission`). The view asks `Submission.begin()`
before creating: the first request with a token claims it (an atomic `cache.add`, so two
requests at the same moment, even on two app servers sharing Redis, cannot both go on); a later
one learns what the first produced (its id, kept in the session, never the secret) and shows
that instead of a second secret. A failed attempt releases the claim so the corrected form can
be sent again. A cache outage falls back to the session's record alone: it never refuses a form.
A post without a token (a script driving the page) is handled as it comes, unprotected.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

from django import forms
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest

T = TypeVar("T")

SESSION_KEY = "portal_submissions"
#: How many submissions a session remembers (the newest).
REMEMBERED = 20
#: How long a claim holds without a result: longer than any create takes.
CLAIM_SECONDS = 600


class OnceForm(forms.Form):
    """A form carrying a one-use token, so a reload or double-submit cannot create a second secret."""

    submission = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("submission", secrets.token_urlsafe(16))


class Submission:
    """One sending of a `OnceForm`: claimed before the create, then remembered or released."""

    def __init__(self, request: HttpRequest, token: str) -> None:
        self.request = request
        self.token = token
        self._cache_key = f"portal:submission:{request.user.pk}:{token}"

    def begin(self) -> str | None:
        """Return None when this request may create; else what the same form already produced.

        That is the id the first request remembered, or "" while it is still running.
        """
        if not self.token:
            return None
        previous = self.request.session.get(SESSION_KEY, {}).get(self.token)
        if previous is not None:
            return str(previous)
        if cache.add(self._cache_key, "1", CLAIM_SECONDS) or cache.get(self._cache_key) is None:
            return None
        return ""

    def failed(self) -> None:
        """Release the claim: nothing was created, the corrected form may be sent again."""
        if not self.token:
            return
        cache.delete(self._cache_key)

    def done(self, result: object) -> None:
        """Remember what this submission produced (an id, never a secret) for a later resend."""
        if not self.token:
            return
        used = dict(list(self.request.session.get(SESSION_KEY, {}).items())[-(REMEMBERED - 1) :])
        used[self.token] = str(result)
        self.request.session[SESSION_KEY] = used

    def run(self, create: Callable[[], T], *, remember: Callable[[T], object]) -> T:
        """Run the create this submission claimed and return its result.

        Remember `remember(result)` (an id) for a resend; when the service refuses, release the
        claim and raise its ValidationError again for the form.
        """
        try:
            result = create()
        except ValidationError:
            self.failed()
            raise
        self.done(remember(result))
        return result


def submission_of(request: HttpRequest, form: OnceForm) -> Submission:
    """Return the submission of a valid bound `OnceForm`."""
    return Submission(request, form.cleaned_data["submission"])
