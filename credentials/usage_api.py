"""`GET /api/v1/orgs/<slug>/usage/`: usage of credentials of both kinds, totals and buckets by outcome."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.governance.registry import all_kinds
from credentials.models import UsageBucket
from credentials.usage import OUTCOMES, RETENTION
from portal.api.access import OrganizationApiView

MAX_CREDENTIALS = 100
DEFAULT_RANGE = timedelta(hours=24)
_KEPT = {"minute": "48 hours", "hour": "90 days", "day": "400 days"}


class UsageQuerySerializer(serializers.Serializer):
    credential = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=MAX_CREDENTIALS
    )
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    granularity = serializers.ChoiceField(choices=list(RETENTION), default="hour")

    def validate(self, attrs):
        now = timezone.now()
        until = attrs.get("until") or now
        since = attrs.get("since") or until - DEFAULT_RANGE
        if since > until:
            raise serializers.ValidationError({"since": ["since must not be after until."]})
        oldest = now - RETENTION[attrs["granularity"]]
        if since < oldest:
            kept = _KEPT[attrs["granularity"]]
            raise serializers.ValidationError(
                {
                    "since": [
                        f"{attrs['granularity']} buckets are kept for {kept}: start at {oldest.isoformat()} "
                        "or later, or choose a coarser granularity."
                    ]
                }
            )
        attrs["since"], attrs["until"] = since, until
        return attrs


def _zero() -> dict[str, int]:
    return dict.fromkeys(OUTCOMES, 0)


class UsageView(OrganizationApiView, APIView):
    """Report how credentials of the organisation were used (session, API key or access token).

    `credential` names an API key by its key id or an M2M application by its client id; it may
    repeat (up to 100). An id that is not one of this organisation's credentials is a field
    error, never data. Three queries whatever the number of credentials.
    """

    authz_actions = {"get": "usage.read"}

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
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Default: 24 hours before until."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Default: now."),
            OpenApiParameter("granularity", OpenApiTypes.STR, enum=list(RETENTION), description="hour"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, org_slug: str) -> Response:
        query = UsageQuerySerializer(
            data={
                **{k: v for k, v in request.query_params.items() if k in ("since", "until", "granularity")},
                "credential": request.query_params.getlist("credential"),
            }
        )
        query.is_valid(raise_exception=True)
        params = query.validated_data
        wanted = list(dict.fromkeys(params["credential"]))
        found: dict[str, dict] = {}
        for kind in all_kinds():
            rows = kind.model.objects.filter(
                organization=self.organization, **{f"{kind.ref_attr}__in": wanted}
            ).values_list(kind.ref_attr, "name")
            for ref, name in rows:
                found[ref] = {"kind": kind.key, "name": name}
        unknown = [ref for ref in wanted if ref not in found]
        if unknown:
            raise exceptions.ValidationError(
                {"credential": [f"Not a credential of this organisation: {', '.join(unknown)[:300]}"]}
            )
        buckets: dict[str, dict] = defaultdict(dict)
        rows = (
            UsageBucket.objects.filter(
                organization=self.organization,
                credential_id__in=wanted,
                granularity=params["granularity"],
                start__gte=params["since"],
                start__lte=params["until"],
            )
            .order_by("start")
            .values_list("kind", "credential_id", "start", "outcome", "count")
        )
        for kind, ref, start, outcome, count in rows:
            if found[ref]["kind"] != kind or outcome not in OUTCOMES:
                continue
            buckets[ref].setdefault(start, _zero())[outcome] += count
        results = []
        for ref in wanted:
            series = [{"start": start.isoformat(), **counts} for start, counts in buckets[ref].items()]
            totals = _zero()
            for entry in buckets[ref].values():
                for outcome, n in entry.items():
                    totals[outcome] += n
            results.append({"credential": ref, **found[ref], "totals": totals, "buckets": series})
        return Response(
            {
                "granularity": params["granularity"],
                "since": params["since"].isoformat(),
                "until": params["until"].isoformat(),
                "outcomes": list(OUTCOMES),
                "credentials": results,
            }
        )
