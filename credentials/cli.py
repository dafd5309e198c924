"""What the commands that create a credential share: owner and scopes, the runtime policy flags, --json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from credentials import policy
from portal.models import Organization, User


def add_identity_arguments(parser, *, name_help: str, owner_help: str, scopes_help: str) -> None:
    """Add `--org`, `--name`, `--owner` and `--scopes` (the pinned flags of every create command)."""
    parser.add_argument("--org", required=True, help="Organisation slug.")
    parser.add_argument("--name", required=True, help=name_help)
    parser.add_argument("--owner", required=True, help=owner_help)
    parser.add_argument("--scopes", default="", help=scopes_help)


def add_policy_arguments(parser, *, json_help: str) -> None:
    """Add the runtime policy flags (`--allowed-ips`, `--rate-limit`) and `--json`."""
    parser.add_argument(
        "--allowed-ips",
        default="",
        metavar="CIDR[,CIDR…]",
        help="Only accept it from these IPv4/IPv6 networks (at most 100); default: any address.",
    )
    parser.add_argument(
        "--rate-limit", default="", metavar="N/S", help="At most N requests per S seconds, e.g. 100/60."
    )
    parser.add_argument("--json", action="store_true", help=json_help)


@contextmanager
def service_refusals() -> Iterator[None]:
    """Stop the command with a service's refusal (a ValidationError) as its error message."""
    try:
        yield
    except ValidationError as exc:
        raise CommandError(" ".join(exc.messages)) from None


def json_written(command: BaseCommand, options: dict[str, Any], result: dict[str, Any]) -> bool:
    """With `--json`, print `result` as one JSON object and return True; else return False (print text)."""
    if not options["json"]:
        return False
    command.stdout.write(json.dumps(result))
    return True


def user_by_email(email: str) -> User:
    """Return the user with this email address, or stop the command."""
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        raise CommandError(f"No user with email {email!r}.")
    return user


def organization_and_owner(options: dict[str, Any]) -> tuple[Organization, User]:
    """Return the organisation named by `--org` and the owner named by `--owner`, or stop the command."""
    organization = Organization.objects.filter(slug=options["org"]).first()
    if organization is None:
        raise CommandError(f"No organisation with slug {options['org']!r}.")
    return organization, user_by_email(options["owner"])


def runtime_policy(options: dict[str, Any]) -> tuple[list[str], dict[str, int] | None]:
    """Return the allowed networks and the rate limit given by the flags, or stop the command."""
    try:
        allowed_ips = policy.clean_allowed_ips(options["allowed_ips"])
        rate_limit = policy.parse_rate_limit(options["rate_limit"]) if options["rate_limit"] else None
    except ValidationError as exc:
        flag = "--allowed-ips" if "allowed_ips" in exc.message_dict else "--rate-limit"
        raise CommandError(f"{flag}: {' '.join(exc.messages)}") from None
    return allowed_ips, rate_limit


def read_text_file(path: str) -> str:
    """Return a text file's content (a public key, a JWKS), or stop the command."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise CommandError(f"Cannot read {path!r}: {exc}") from None
