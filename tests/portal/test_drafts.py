"""Entries kept across step-up (portal.drafts): never a secret, used once, bounded."""

from __future__ import annotations

from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.test import RequestFactory

from portal.drafts import DRAFT_PARAM, MAX_DRAFTS, draft_stash, draft_take


def _post(data: dict) -> object:
    request = RequestFactory().post("/orgs/acme/api-keys/new/", data)
    request.session = SessionStore()
    return request


def _take(session, url: str):
    request = RequestFactory().get(url)
    request.session = session
    return draft_take(request)


def test_a_draft_keeps_entries_but_never_secrets_or_one_use_tokens():
    request = _post(
        {
            "name": "billing",
            "scopes": ["orders:read", "orders:write"],
            "password": "hunter2",
            "client_secret": "ips_abc",
            "csrfmiddlewaretoken": "x",
            "submission": "once",
            "code": "123456",
        }
    )
    url = draft_stash(request, "/orgs/acme/api-keys/new/?tab=1")
    assert url.startswith("/orgs/acme/api-keys/new/?tab=1&step_up_draft=")
    draft = _take(request.session, url)
    assert draft == {
        "action": "/orgs/acme/api-keys/new/",
        "data": {"name": ["billing"], "scopes": ["orders:read", "orders:write"]},
    }
    assert _take(request.session, url) is None  # once


def test_nothing_worth_keeping_leaves_the_url_alone():
    request = _post({"password": "hunter2", "csrfmiddlewaretoken": "x"})
    assert draft_stash(request, "/orgs/acme/") == "/orgs/acme/"
    request = _post({"name": "x" * 20000})
    assert draft_stash(request, "/orgs/acme/") == "/orgs/acme/"


def test_a_session_keeps_only_the_latest_drafts():
    request = _post({"name": "n"})
    urls = [draft_stash(request, "/p/") for _ in range(MAX_DRAFTS + 2)]
    assert len(request.session["step_up_drafts"]) == MAX_DRAFTS
    assert _take(request.session, urls[0]) is None
    assert _take(request.session, urls[-1]) is not None
    assert _take(request.session, f"/p/?{DRAFT_PARAM}=made-up") is None
