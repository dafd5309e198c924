"""A trust's subject pattern (`*` matches anything, the rest literally) is matched in linear time.

A regular expression with one `.*` per `*` backtracked: with three wildcards and literal text
after them, one forged token with a long `sub` held a worker for seconds, before its signature
was known to be bad. The linear matcher must agree with those regular-expression semantics.
"""

from __future__ import annotations

import random
import re

import pytest

from tokens.federation.trust import MAX_SUBJECT_LENGTH, subject_matches


def _as_regex(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if p == "*" else re.escape(p) for p in re.split(r"(\*)", pattern)), re.S)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("repo:acme/api:ref:refs/heads/main", "repo:acme/api:ref:refs/heads/main", True),
        ("repo:acme/api:ref:refs/heads/main", "repo:acme/api:ref:refs/heads/main2", False),
        ("repo:acme/api:*", "repo:acme/api:ref:refs/heads/main", True),
        ("repo:acme/api:*", "repo:acme/apix:ref", False),
        ("spiffe://acme.example/*/*/*/api", "spiffe://acme.example/ns/p/sa/api", True),
        ("spiffe://acme.example/*/*/*/api", "spiffe://acme.example/ns/api", False),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("*", "", True),
        ("**", "x", True),
        ("x*y*z", "xyz", True),
        ("x*y*z", "xzy", False),
    ],
)
def test_the_matcher_follows_the_documented_semantics(pattern, subject, expected):
    assert subject_matches(pattern, subject) is expected
    assert bool(_as_regex(pattern).fullmatch(subject)) is expected


def test_the_matcher_agrees_with_the_regular_expression_on_random_input():
    rng = random.Random(7)
    for _ in range(5000):
        pattern = "".join(rng.choice("ab*/") for _ in range(rng.randint(0, 7)))
        subject = "".join(rng.choice("ab/") for _ in range(rng.randint(0, 10)))
        assert subject_matches(pattern, subject) is bool(_as_regex(pattern).fullmatch(subject)), (
            pattern,
            subject,
        )


def test_a_forged_long_subject_is_refused():
    pattern = "spiffe://acme.example/*/*/*/api"
    assert not subject_matches(pattern, "spiffe://acme.example/" + "/" * (MAX_SUBJECT_LENGTH - 40) + "z")
    assert not subject_matches(pattern, "spiffe://acme.example/ns/p/sa/" + "x" * MAX_SUBJECT_LENGTH + "/api")
