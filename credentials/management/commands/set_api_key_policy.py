"""`manage.py set_api_key_policy`: the policy on kinds, per environment (docs/choosing.md#policy-on-kinds)."""

from __future__ import annotations

from django.core.management.base import CommandError

from credentials.api_keys.kind_policy import api_key_policy_summary
from credentials.cli import json_written, service_refusals
from credentials.governance.models import NewApiKeys
from credentials.governance.org_policy import policy_for, policy_update
from portal.management.base import PortalCommand
from portal.models import Organization


class Command(PortalCommand):
    help = (
        "Allow new live or test API keys, allow them only with an expiry of at most N days, or refuse them "
        "(M2M applications only). Existing keys keep working; those the new rule would refuse are flagged "
        "and their owners told once. Without options, print the current rules."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        for environment in ("live", "test"):
            parser.add_argument(
                f"--{environment}", choices=NewApiKeys.values, help=f"New {environment} API keys."
            )
            parser.add_argument(
                f"--{environment}-max-days",
                type=int,
                metavar="N",
                help=f"With --{environment} expiring: the longest expiry of a new key, in days.",
            )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organisation with slug {options['org']!r}.")
        values = {}
        for environment in ("live", "test"):
            if options[environment] is not None:
                values[f"new_{environment}_api_keys"] = options[environment]
            if options[f"{environment}_max_days"] is not None:
                values[f"new_{environment}_api_keys_max_days"] = options[f"{environment}_max_days"]
        with service_refusals():
            policy = (
                policy_update(organization=organization, actor=None, **values)
                if values
                else policy_for(organization)
            )
        result = api_key_policy_summary(policy)
        if json_written(self, options, result):
            return
        for environment in ("live", "test"):
            rule, days = policy.new_api_keys(environment)
            detail = f" (at most {days} days)" if days else ""
            self.stdout.write(f"new {environment} API keys: {rule}{detail}")
        self.stdout.write(f"keys against the policy (still working): {result['flagged_api_keys']}")
