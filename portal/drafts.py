"""Keep a submitted form's entries across step-up, so re-authenticating does not empty the form.

A POST that needs a fresh sign-in is not replayed (it could mint a secret the user no longer
expects); its entries are kept in the session under a one-time id instead, and the page the
form was on fills them back in after re-authentication. Secrets are never kept: passwords,
one-time codes, tokens, anything named like a secret and anything that looks like pasted key
material are left out.
"""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.http import HttpRequest

#: The query parameter naming the draft on the page the user returns to.
DRAFT_PARAM = "step_up_draft"
SESSION_KEY = "step_up_drafts"
MAX_DRAFTS = 3
MAX_DRAFT_BYTES = 16 * 1024
# Never kept: credentials and the one-use tokens each rendering of a form carries.
_SECRET_NAME = re.compile(r"password|secret|token|csrf|otp|code|recovery|private|submission", re.IGNORECASE)
# Nor pasted key material, whatever the field's name: PEM blocks, JSON (a JWK or key set may
# carry private members), long base64 runs (a line of a key's body pasted without its armor).
_KEY_MATERIAL = re.compile(r'-----BEGIN|^\s*(\{\s*"|\[\s*[\[{])|[A-Za-z0-9+/_-]{60,}')


def _kept(name: str, values: list[str]) -> bool:
    return not _SECRET_NAME.search(name) and not any(_KEY_MATERIAL.search(value) for value in values)


def draft_stash(request: HttpRequest, back_url: str) -> str:
    """Keep the POST's entries (not its secrets) and return `back_url` naming them; unchanged if none."""
    if request.method != "POST" or request.FILES:
        return back_url
    data = {name: values for name, values in request.POST.lists() if _kept(name, values)}
    if not data or len(json.dumps(data)) > MAX_DRAFT_BYTES:
        return back_url
    draft_id = secrets.token_urlsafe(12)
    drafts = dict(list(request.session.get(SESSION_KEY, {}).items())[-(MAX_DRAFTS - 1) :])
    drafts[draft_id] = {"action": request.path, "data": data}
    request.session[SESSION_KEY] = drafts
    parts = urlsplit(back_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != DRAFT_PARAM]
    return urlunsplit(("", "", parts.path, urlencode([*query, (DRAFT_PARAM, draft_id)]), ""))


def draft_take(request: HttpRequest) -> dict | None:
    """Return and forget the draft this page's URL names (`{"action": path, "data": {name: [values]}}`)."""
    draft_id = request.GET.get(DRAFT_PARAM)
    if not draft_id or not hasattr(request, "session"):
        return None
    drafts = request.session.get(SESSION_KEY) or {}
    if draft_id not in drafts:
        return None
    draft = drafts.pop(draft_id)
    request.session[SESSION_KEY] = drafts
    return draft
