"""`manage.py move_api_key_to_m2m_app`: replace an API key with an M2M application (same owner, scopes)."""

from __future__ import annotations

from credentials.api_keys.cli import add_key_id_argument, api_key_named
from credentials.cli import json_written, service_refusals
from portal.management.base import PortalCommand
from tokens.clients.moves import api_key_move_to_m2m_app


class Command(PortalCommand):
    help = (
        "Create an M2M application with the owner, scopes and environment of an API key and print its "
        "client id and secret once. The key keeps working until you revoke it."
    )

    def add_arguments(self, parser):
        add_key_id_argument(parser)
        parser.add_argument("--name", default="", help="Name of the application (default: the key's name).")
        parser.add_argument(
            "--justification",
            default="",
            help="Why, for the approvers (when the organisation approves).",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        api_key = api_key_named(options)
        with service_refusals():
            move = api_key_move_to_m2m_app(
                api_key=api_key,
                actor=None,
                name=options["name"],
                justification=options["justification"],
                via="cli",
            )
        application = move.application
        result = {
            **move.summary(),
            "organization": application.organization.slug,
            "owner": application.owner.email,
        }
        if move.pending:
            result["detail"] = (
                "The organisation approves new M2M applications: this one waits for approval and has no "
                "secret yet. Its owner generates the secret once it is approved. The key keeps working."
            )
            result["request_id"] = move.request.pk
        if json_written(self, options, result):
            return
        self.stdout.write(
            f"Moved API key {api_key.display_prefix} to the M2M application {application.name} "
            f"(id {application.pk})."
        )
        self.stdout.write(f"client_id:     {application.client_id}")
        if move.pending:
            self.stdout.write(result["detail"])
            return
        self.stdout.write(f"client_secret: {move.client_secret}")
        self.stdout.write(
            "The secret is shown only now; store it safely. Revoke the key once nothing uses it."
        )
