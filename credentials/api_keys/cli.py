"""What the commands about one existing API key share: the `--key-id` flag and finding its key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from credentials.api_keys.models import ApiKey
from credentials.api_keys.selectors import api_key_by_ref


def add_key_id_argument(parser) -> None:
    """Add the required `--key-id` (the key's public id or its display prefix, as the dashboard shows)."""
    parser.add_argument("--key-id", required=True, help="The key's public id, or its display prefix.")


def api_key_named(options: dict[str, Any]) -> ApiKey:
    """Return the key named by `--key-id` (of any organisation), or stop the command."""
    api_key = api_key_by_ref(options["key_id"])
    if api_key is None:
        raise CommandError(f"No API key with id {options['key_id']!r}.")
    return api_key
