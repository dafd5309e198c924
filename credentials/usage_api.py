"""`GET /api/v1/orgs/<slug>/usage/`: usage of credentials of both kinds, totals and buckets by outcome.

JSON by default; CSV for `?format=csv` or `Accept: text/csv` (credentials.insight.export).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.insight.export import usage_csv, usage_csv_filename
from credentials.insight.selectors import credentials_by_ref, usage_series
from credentials.lifetimes import add_clamped
from credentials.usage import OUTCOMES, RETENTION, rollup_before_reading
from portal.api.access import OrganizationApiView

MAX_CREDENTIALS = 100
DEFAULT_RANGE = timedelta(hours=24)
_KEPT = {"minute": "48 hours", "hour": "90 days", "day": "400 days"}


#: A date-time whose offset lost its `+`: pasted into a URL unencoded, `+` reads as a space.
_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


class QueryDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time from a query string, where `…T09:00:00 01:00` means `…+01:00`.

    A `-HH:MM` offset or `Z` survives a URL as written; a `+HH:MM` offset sent unencoded (not as
    `%2B`) arrives with a space instead, and is read as the `+` it was.
    """

    def to_internal_value(self, value):
        if isinstance(value, str):
            value = _SPACED_OFFSET.sub(r"\1+\2", value)
        return super().to_internal_value(value)


def utc_iso(when: datetime) -> str:
    """Return `when` in UTC, ISO 8601 with `Z`: sent back in a URL unencoded, it has no `+` to lose."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


class UsageQuerySerializer(serializers.Serializer):
    credential = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=MAX_CREDENTIALS
    )
    since = QueryDateTimeField(required=False)
    until = QueryDateTimeField(required=False)
    granularity = serializers.ChoiceField(choices=list(RETENTION), default="hour")

    def validate(self, attrs):
        now = timezone.now()
        until = attrs.get("until") or now
        since = attrs.get("since") or add_clamped(until, -DEFAULT_RANGE)
        if since > until:
            raise serializers.ValidationError({"since": ["since must not be after until."]})
        oldest = now - RETENTION[attrs["granularity"]]
        if since < oldest:
            kept = _KEPT[attrs["granularity"]]
            raise serializers.ValidationError(
                {
                    "since": [
                        f"{attrs['granularity']} buckets are kept for {kept}: start at {utc_iso(oldest)} "
                        + (
                            "or later."
                            if attrs["granularity"] == "day"
                            else "or later, or choose a coarser granularity."
                        )
                    ]
                }
            )
        attrs["since"], attrs["until"] = since, until
        return attrs


def _counts_fields() -> dict[str, serializers.Field]:
    return {outcome: serializers.IntegerField(min_value=0) for outcome in OUTCOMES}


#: What a JSON answer holds (docs/usage.md), for the OpenAPI schema: described, not used to render.
UsageAnswerSchema = inline_serializer(
    "UsageAnswer",
    {
        "granularity": serializers.ChoiceField(choices=list(RETENTION)),
        "since": serializers.DateTimeField(),
        "until": serializers.DateTimeField(),
        "outcomes": serializers.ListField(child=serializers.ChoiceField(choices=list(OUTCOMES))),
        "credentials": inline_serializer(
            "UsageCredential",
            {
                "credential": serializers.CharField(help_text="The API key id or M2M client id asked for."),
                "kind": serializers.ChoiceField(choices=["api_key", "m2m_app"]),
                "name": serializers.CharField(),
                "totals": inline_serializer("UsageTotals", _counts_fields()),
                "buckets": inline_serializer(
                    "UsageBucket",
                    {"start": serializers.DateTimeField(), **_counts_fields()},
                    many=True,
                    help_text="Oldest first; a bucket without use is left out.",
                ),
            },
            many=True,
        ),
    },
)


class UsageCsvRenderer(BaseRenderer):
    """Render a usage answer as CSV: a row per credential and bucket, a column per outcome."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return usage_csv(data["credentials"]).encode()


class UsageView(OrganizationApiView, APIView):
    """Report how credentials of the organisation were used (session, API key or access token).

    `credential` names an API key by its key id or an M2M application by its client id; it may
    repeat (up to 100). An id that is not one of this organisation's credentials is a field
    error, never data. One query per kind and one for the buckets, whatever the number of
    credentials. `?format=csv` or `Accept: text/csv` answers the same data as a CSV download.
    """

    authz_actions = {"get": "usage.read"}
    renderer_classes = [JSONRenderer, UsageCsvRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        # Only a usage answer is CSV. A refusal, a field error or the OPTIONS metadata is JSON, to
        # a CSV request too: a client (or a person) reads why, and a spreadsheet never gets an
        # error as if it were data.
        answered = request.method in ("GET", "HEAD") and response.status_code == 200
        if isinstance(getattr(request, "accepted_renderer", None), UsageCsvRenderer) and not answered:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        response = super().finalize_response(request, response, *args, **kwargs)
        # The same URL answers JSON or CSV by the Accept header: a cache must keep them apart.
        patch_vary_headers(response, ("Accept",))
        return response

    @extend_schema(
        summary="Usage of credentials, per outcome, in minute, hour or day buckets",
        parameters=[
            OpenApiParameter(
                "credential",
                OpenApiTypes.STR,
                many=True,
                required=True,
                description="An API key id or an M2M client id; repeat for several.",
            ),
            OpenApiParameter(
                "since",
                OpenApiTypes.DATETIME,
                description="Default: 24 hours before until. `Z` or an offset; a `+` sent unencoded "
                "(a space) is read as `+`. Echoed in UTC with `Z`.",
            ),
            OpenApiParameter(
                "until",
                OpenApiTypes.DATETIME,
                description="Default: now. As `since`; echoed in UTC with `Z`.",
            ),
            OpenApiParameter(
                "granularity",
                OpenApiTypes.STR,
                enum=list(RETENTION),
                default="hour",
                description="Bucket size (default hour).",
            ),
        ],
        responses={(200, "application/json"): UsageAnswerSchema, (200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request, org_slug: str) -> Response:
        rollup_before_reading()
        query = UsageQuerySerializer(
            data={
                **{k: v for k, v in request.query_params.items() if k in ("since", "until", "granularity")},
                "credential": request.query_params.getlist("credential"),
            }
        )
        query.is_valid(raise_exception=True)
        params = query.validated_data
        wanted = list(dict.fromkeys(params["credential"]))
        found = credentials_by_ref(self.organization, wanted)
        unknown = [ref for ref in wanted if ref not in found]
        if unknown:
            raise exceptions.ValidationError(
                {"credential": [f"Not a credential of this organisation: {', '.join(unknown)[:300]}"]}
            )
        results = usage_series(
            self.organization,
            {ref: found[ref] for ref in wanted},
            granularity=params["granularity"],
            since=params["since"],
            until=params["until"],
        )
        headers = {}
        if isinstance(request.accepted_renderer, UsageCsvRenderer):
            name = usage_csv_filename(
                self.organization.slug, params["granularity"], params["since"], params["until"]
            )
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return Response(
            {
                "granularity": params["granularity"],
                "since": utc_iso(params["since"]),
                "until": utc_iso(params["until"]),
                "outcomes": list(OUTCOMES),
                "credentials": results,
            },
            headers=headers,
        )
