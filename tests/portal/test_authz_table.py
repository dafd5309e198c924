"""The authority table is data: docs/security.md holds it exactly, and its rules are consistent."""

from __future__ import annotations

from pathlib import Path

from portal import authz

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_docs_hold_the_generated_table():
    assert authz.as_markdown() in DOCS.read_text(), (
        "docs/security.md is out of date: paste portal.authz.as_markdown() into its authority section"
    )


def test_every_power_change_needs_a_step_up_and_a_person():
    for action in (
        "members.invite",
        "members.role",
        "members.remove",
        "members.invitation_revoke",
        "policy.change",
        "api_key.reassign",
        "m2m_app.reassign",
        "security.change",
        "staff.flags",
    ):
        rule = authz.rule(action)
        assert rule.step_up and rule.scope is None, action
    for kind in ("api_key", "m2m_app"):
        assert authz.rule(f"{kind}.scopes_widen").step_up and not authz.rule(f"{kind}.scopes").step_up
        assert authz.rule(f"{kind}.policy").step_up  # lifting an allowlist or a limit widens power


def test_a_credential_is_bounded_by_its_owners_current_role():
    scopes = {"orders:read", "requests:decide", "webhooks:manage", "api_keys:manage"}
    assert authz.effective_scopes(scopes, "owner") == scopes
    assert authz.effective_scopes(scopes, "member") == {"orders:read", "api_keys:manage"}
    assert authz.effective_scopes(scopes, None) == {"orders:read"}


def test_a_credential_never_acts_beyond_itself():
    key = authz.Actor(user_id=1, role="owner", scopes=frozenset({"api_keys:manage"}), credential="api_key:x")
    authz.authorize(key, "api_key.rotate", owner_id=2, scopes={"api_keys:manage"})
    for scopes, code in (({"api_keys:manage", "requests:decide"}, "exceeds_credential"),):
        try:
            authz.authorize(key, "api_key.rotate", owner_id=2, scopes=scopes)
        except authz.Refused as exc:
            assert exc.code == code
        else:
            raise AssertionError("a credential rotated a key wider than itself")
    member_key = authz.Actor(user_id=3, role="member", scopes=frozenset({"api_keys:manage"}), credential="k")
    assert not authz.allowed(member_key, "api_key.rotate", owner_id=2)
    assert authz.allowed(member_key, "api_key.rotate", owner_id=3, scopes=set())
    assert not authz.allowed(member_key, "requests.decide")
    orphan_key = authz.Actor(user_id=4, role=None, scopes=frozenset({"api_keys:manage"}), credential="k")
    assert not authz.allowed(orphan_key, "api_key.view")


def test_four_eyes_counts_the_people_behind_a_credential():
    authz.check_four_eyes(requester_id=1, decider_id=2, linked_ids={2, 3})
    for decider, linked in ((1, set()), (2, {1})):
        try:
            authz.check_four_eyes(requester_id=1, decider_id=decider, linked_ids=linked)
        except authz.Refused as exc:
            assert exc.code == "four_eyes"
        else:
            raise AssertionError("the requester decided")
