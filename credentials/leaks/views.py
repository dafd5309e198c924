"""`POST /api/v1/secret-scanning/reports`: GitHub's secret-scanning partner alerts.

Authenticated only by GitHub's ECDSA signature over the raw body (no session, no CSRF
token). Every accepted alert is answered `200 []` whatever its tokens were, so the answer
never tells which strings are live credentials of this portal. See docs/leak-reports.md.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.leaks import signing
from credentials.leaks.services import LeakReportsIncomplete, leak_reports_receive, reported_tokens_parse
from portal.infra import ratelimit
from portal.infra.net import client_ip
from portal.infra.responses import no_store

logger = logging.getLogger(__name__)

FAILURE_SCOPE = "secret-scanning-failures:ip"


def _failure_checks(request) -> list[ratelimit.Check]:
    return [
        (
            FAILURE_SCOPE,
            client_ip(request),
            ratelimit.per_minute("PORTAL_SECRET_SCANNING_FAILURES_PER_IP_PER_MINUTE"),
        )
    ]


def _error(status_code: int, detail: str, code: str) -> Response:
    response = Response({"detail": detail, "code": code}, status=status_code)
    return no_store(response)


class _ReportSerializer(serializers.Serializer):
    """One reported token (for the schema; the view parses the raw body itself)."""

    token = serializers.CharField()
    type = serializers.CharField(help_text="Cut to 100 characters.")
    url = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="Cut to 2048 characters."
    )
    source = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="Cut to 64 characters."
    )


class _FeedbackSerializer(serializers.Serializer):
    """GitHub's optional feedback item; this portal sends none (see the module docstring)."""

    token_hash = serializers.CharField()
    token_type = serializers.CharField()
    label = serializers.ChoiceField(choices=["true_positive", "false_positive"])


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()


class SecretScanningReportView(APIView):
    """Receive a secret-scanning alert: verify its signature, then revoke or suspend what leaked."""

    authentication_classes = ()
    permission_classes = ()
    # The raw body is verified byte for byte before anything parses it.
    parser_classes = ()

    @extend_schema(
        summary="Report leaked secrets (GitHub secret scanning partner alerts)",
        request=_ReportSerializer(many=True),
        responses={
            200: OpenApiResponse(
                _FeedbackSerializer(many=True),
                description="Accepted. Always `[]`: no feedback labels, whatever the tokens were.",
            ),
            400: OpenApiResponse(ErrorSerializer, description="Not a JSON array of reported tokens."),
            403: OpenApiResponse(ErrorSerializer, description="Missing or wrong signature."),
            404: OpenApiResponse(ErrorSerializer, description="No public keys are configured."),
            411: OpenApiResponse(ErrorSerializer, description="No Content-Length (a chunked body)."),
            413: OpenApiResponse(ErrorSerializer, description="The body is too large."),
            429: OpenApiResponse(ErrorSerializer, description="Too many failed signatures."),
            503: OpenApiResponse(
                ErrorSerializer,
                description="The public keys are misconfigured, or some tokens could not be handled (retry).",
            ),
        },
        parameters=[
            OpenApiParameter(signing.KEY_ID_HEADER, str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(signing.SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=True),
        ],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        django_request = request._request
        if not signing.configured():
            return _error(status.HTTP_404_NOT_FOUND, "Not found.", "not_configured")
        checks = _failure_checks(django_request)
        # Checked now, applied only to a refused signature: a genuine alert is never dropped
        # because others (behind the same proxy or NAT) sent bad ones. A P-256 verification
        # costs a fraction of a millisecond, so the limit is about noise, not CPU.
        wait = ratelimit.blocked(checks)
        try:
            keys = signing.public_keys()
        except signing.KeysMisconfigured as exc:
            logger.error("Secret scanning public keys are misconfigured: %s", exc)
            return _error(
                status.HTTP_503_SERVICE_UNAVAILABLE, "Secret scanning is misconfigured.", "misconfigured"
            )
        body = self._body(django_request)
        if body is None:
            return _error(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "The request body is too large.", "too_large"
            )
        if not body and not django_request.META.get("CONTENT_LENGTH"):
            # A chunked body reaches a WSGI app as nothing at all; say so rather than "bad signature".
            return _error(
                status.HTTP_411_LENGTH_REQUIRED, "Send the body with a Content-Length.", "length_required"
            )
        try:
            signing.verify(
                body,
                key_id=django_request.headers.get(signing.KEY_ID_HEADER, ""),
                signature=django_request.headers.get(signing.SIGNATURE_HEADER, ""),
                keys=keys,
            )
        except signing.SignatureRefused as exc:
            if wait is not None:
                raise exceptions.Throttled(wait=wait) from None
            ratelimit.hit_all(checks)
            logger.warning("Secret scanning alert refused: %s", exc.code)
            return _error(status.HTTP_403_FORBIDDEN, str(exc), exc.code)
        try:
            reported = reported_tokens_parse(body)
        except ValidationError as exc:
            return _error(status.HTTP_400_BAD_REQUEST, " ".join(exc.messages), exc.code or "invalid")
        try:
            leak_reports_receive(reported=reported)
        except LeakReportsIncomplete:
            # The others were handled; a retry of the whole alert replays them harmlessly.
            return _error(
                status.HTTP_503_SERVICE_UNAVAILABLE, "Some reports could not be handled; retry.", "retry"
            )
        # No feedback labels: `[]` for every accepted alert, whatever it held (docs/leak-reports.md).
        response = Response([], status=status.HTTP_200_OK)
        return no_store(response)

    @staticmethod
    def _body(django_request) -> bytes | None:
        """Return the raw body, or None when it is larger than the request size limit.

        `portal.infra.bounds` already refuses a larger declared length (413); this also bounds a
        body sent without one.
        """
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 1024 * 1024
        body = django_request.read(limit + 1)
        return None if len(body) > limit else body
