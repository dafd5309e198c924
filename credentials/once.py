"""Double-submit protection for the forms that create a secret: a one-use token per rendered form.

A reload or a second click of the page that shows a new secret must not create a second one:
the form carries a token, and the session remembers which tokens were used and for what.
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.http import HttpRequest


class OnceForm(forms.Form):
    """A form carrying a one-use token (`submission`)."""

    submission = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("submission", secrets.token_urlsafe(16))


class Submissions:
    """The one-use tokens a session used (the last 20), each with the public id of what it created."""

    def __init__(self, session_key: str) -> None:
        self.session_key = session_key

    def used(self, request: HttpRequest, token: str) -> Any:
        """Return what the token already created, or None."""
        return request.session.get(self.session_key, {}).get(token)

    def remember(self, request: HttpRequest, token: str, ref: Any) -> None:
        """Record that the token created `ref` (a public id, never a secret)."""
        used = dict(list(request.session.get(self.session_key, {}).items())[-19:])
        used[token] = ref
        request.session[self.session_key] = used
