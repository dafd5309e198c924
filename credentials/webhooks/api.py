"""REST API for webhooks under `/api/v1/orgs/<slug>/webhooks/`: the dashboard's actions, for scripts.

Authenticated by session (owners and admins, with CSRF; creating, changing, deleting and
rotating need a recent sign-in) or by an API key of the same organisation holding
`webhooks:manage` whose owner is an owner or admin (portal.authz, `webhooks.*`).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from credentials.api_keys.authentication import ApiKeyAuthentication
from credentials.webhooks import serializers, services
from credentials.webhooks.models import WebhookDelivery, WebhookEndpoint
from credentials.webhooks.selectors import webhook_deliveries_for, webhook_delivery_get, webhook_endpoints_for
from portal.api.errors import Conflict, api_error
from portal.api.metadata import DescribesInput
from portal.infra.responses import no_store
from portal.models import User
from portal.permissions import AuthorizedView, OrganizationAccess

MANAGE_SCOPE = "webhooks:manage"

#: Service refusals about the endpoints' state, not the request's input: 409 (as `too_many` for an
#: application's secrets): the organisation's endpoint limit, a disabled endpoint's test event,
#: test events already waiting.
_CONFLICT_CODES = {"limit", "inactive", "queued"}

_BAD_INPUT = OpenApiResponse(description="Bad input, by field")


def _refusal(exc: DjangoValidationError) -> exceptions.APIException:
    """Return the REST answer to a service's refusal: by field, else `{"detail", "code"}`."""
    return api_error(exc, conflict=_CONFLICT_CODES, detail_body=True)


@extend_schema_view(
    list=extend_schema(summary="List the organisation's webhook endpoints"),
    retrieve=extend_schema(summary="Show one webhook endpoint"),
)
class WebhookEndpointViewSet(DescribesInput, AuthorizedView, GenericViewSet):
    """Manage an organisation's webhook endpoints and see their deliveries."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [OrganizationAccess]
    authz_actions = {
        "list": "webhooks.manage",
        "retrieve": "webhooks.manage",
        "ping": "webhooks.manage",
        "deliveries": "webhooks.manage",
        "retry": "webhooks.manage",
        "create": "webhooks.change",
        "partial_update": "webhooks.change",
        "destroy": "webhooks.change",
        "rotate_secret": "webhooks.change",
    }
    serializer_class = serializers.WebhookEndpointSerializer
    input_serializers = {
        "create": serializers.WebhookEndpointCreateSerializer,
        "rotate_secret": serializers.WebhookSecretRotateSerializer,
        "ping": None,
        "retry": None,
    }
    lookup_url_kwarg = "endpoint_id"
    lookup_value_regex = "[0-9]+"
    queryset = WebhookEndpoint.objects.none()
    organization = None

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        if self.organization is None:
            return WebhookEndpoint.objects.none()
        return webhook_endpoints_for(self.organization)

    def _actor(self) -> User | None:
        return self.acting_user()  # A key acts on behalf of its owner.

    def _change(self, input_serializer, service, *, context: dict | None = None, **arguments):
        """Validate the request body with `input_serializer` (given `context`), then call the service
        with it, as the actor."""
        data = input_serializer(data=self.request.data, context=context or {})
        data.is_valid(raise_exception=True)
        try:
            return service(actor=self._actor(), **arguments, **data.validated_data)
        except DjangoValidationError as exc:
            raise _refusal(exc) from exc

    @staticmethod
    def _with_secret(endpoint: WebhookEndpoint, secret: str) -> Response:
        """Answer 201 with the endpoint and its new signing secret, which is never shown again."""
        body = serializers.WebhookEndpointWithSecretSerializer(endpoint, context={"secret": secret}).data
        return no_store(Response(body, status=status.HTTP_201_CREATED))

    def list(self, request: Request, org_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, org_slug: str, endpoint_id: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Add a webhook endpoint",
        request=serializers.WebhookEndpointCreateSerializer,
        responses={
            201: serializers.WebhookEndpointWithSecretSerializer,
            400: _BAD_INPUT,
            409: OpenApiResponse(
                description=f"The organisation has its {services.MAX_ENDPOINTS_PER_ORGANIZATION} endpoints "
                "(`limit`)"
            ),
        },
        description="The response holds the signing `secret`. It is never shown again.",
    )
    def create(self, request: Request, org_slug: str) -> Response:
        endpoint, secret = self._change(
            serializers.WebhookEndpointCreateSerializer,
            services.webhook_endpoint_create,
            organization=self.organization,
        )
        return self._with_secret(endpoint, secret)

    @extend_schema(
        summary="Change a webhook endpoint's events, description or active flag",
        request=serializers.WebhookEndpointUpdateSerializer,
        responses={200: serializers.WebhookEndpointSerializer, 400: _BAD_INPUT},
    )
    def partial_update(self, request: Request, org_slug: str, endpoint_id: str) -> Response:
        endpoint = self.get_object()
        endpoint = self._change(
            serializers.WebhookEndpointUpdateSerializer,
            services.webhook_endpoint_update,
            context={"current": self.get_serializer(endpoint).data},
            endpoint=endpoint,
        )
        return Response(self.get_serializer(endpoint).data)

    @extend_schema(summary="Delete a webhook endpoint and its deliveries", responses={204: None})
    def destroy(self, request: Request, org_slug: str, endpoint_id: str) -> Response:
        endpoint = self.get_object()
        services.webhook_endpoint_delete(endpoint=endpoint, actor=self._actor())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate a webhook endpoint's signing secret",
        request=serializers.WebhookSecretRotateSerializer,
        responses={201: serializers.WebhookEndpointWithSecretSerializer, 400: _BAD_INPUT},
        description="The new `secret` is in this response only; the previous one also signs for "
        "`overlap_hours`.",
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, org_slug: str, endpoint_id: str) -> Response:
        endpoint, secret = self._change(
            serializers.WebhookSecretRotateSerializer,
            services.webhook_endpoint_rotate_secret,
            endpoint=self.get_object(),
        )
        return self._with_secret(endpoint, secret)

    @extend_schema(
        summary="Queue a test event (webhook.ping)",
        request=None,
        responses={
            202: serializers.WebhookDeliverySerializer,
            409: OpenApiResponse(
                description="The endpoint is disabled (`inactive`), or test events wait (`queued`)"
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def ping(self, request: Request, org_slug: str, endpoint_id: str) -> Response:
        endpoint = self.get_object()
        try:
            delivery = services.webhook_endpoint_ping(endpoint=endpoint, actor=self._actor())
        except DjangoValidationError as exc:
            raise _refusal(exc) from exc
        return Response(serializers.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="List an endpoint's deliveries, newest first",
        responses=serializers.WebhookDeliverySerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, org_slug: str, endpoint_id: str) -> Response:
        endpoint = self.get_object()
        page = self.paginate_queryset(webhook_deliveries_for(endpoint))
        return self.get_paginated_response(serializers.WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(
        summary="Send a failed or abandoned delivery again",
        request=None,
        responses={
            202: serializers.WebhookDeliverySerializer,
            409: OpenApiResponse(
                description="Not retryable: it has not failed (`not_retryable`), a sender is attempting "
                "it now (`in_flight`: wait for its outcome, then ask again), or the endpoint is disabled "
                "(`inactive`)"
            ),
        },
    )
    @action(
        detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>[0-9]+)/retry", url_name="retry"
    )
    def retry(self, request: Request, org_slug: str, endpoint_id: str, delivery_id: str) -> Response:
        endpoint = self.get_object()
        try:
            delivery = webhook_delivery_get(self.organization, endpoint.pk, int(delivery_id))
        except WebhookDelivery.DoesNotExist:
            raise exceptions.NotFound("No such delivery.") from None
        try:
            delivery = services.webhook_delivery_retry(delivery=delivery, actor=self._actor())
        except DjangoValidationError as exc:
            raise Conflict(" ".join(exc.messages), code=exc.code or "conflict") from exc
        return Response(serializers.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
