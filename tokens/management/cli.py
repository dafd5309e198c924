"""What the commands about one existing M2M application share: the `--client-id` flag and finding it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from tokens.models import M2MApplication


def add_client_id_argument(parser) -> None:
    """Add the required `--client-id` (the application's OAuth client id)."""
    parser.add_argument("--client-id", required=True, help="The application's client id.")


def application_named(options: dict[str, Any]) -> M2MApplication:
    """Return the application named by `--client-id` (of any organisation), or stop the command."""
    application = M2MApplication.objects.filter(client_id=options["client_id"]).first()
    if application is None:
        raise CommandError(f"No application with client id {options['client_id']!r}.")
    return application
