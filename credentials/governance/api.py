"""`GET /api/v1/orgs/<slug>/inventory/`: the inventory as JSON, the same rows as the page."""

from __future__ import annotations

from django.core.paginator import EmptyPage, Paginator
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.governance.inventory_usage import ATTENTION, SORTS
from credentials.governance.selectors import FLAGS, STATUSES, inventory_list, inventory_rows
from credentials.governance.views import inventory_filters
from credentials.selectors import organization_members
from portal.api.access import OrganizationApiView

INVENTORY_SCOPE = "inventory:read"
MAX_PAGE_SIZE = 200


class InventoryView(OrganizationApiView, APIView):
    """List both credential kinds of an organisation with their flags (session, API key or access token)."""

    authz_actions = {"get": "inventory.read"}

    @extend_schema(
        summary="The organisation's credential inventory (API keys and M2M applications)",
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, description="A credential kind: api_key, m2m_app, …"),
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(STATUSES)),
            OpenApiParameter("flag", OpenApiTypes.STR, enum=list(FLAGS)),
            OpenApiParameter("owner", OpenApiTypes.INT, description="The owner's user id."),
            OpenApiParameter("q", OpenApiTypes.STR, description="Name contains, or id starts with, this."),
            OpenApiParameter("scope", OpenApiTypes.STR),
            OpenApiParameter("attention", OpenApiTypes.STR, enum=list(ATTENTION)),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=list(SORTS)),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT, description=f"At most {MAX_PAGE_SIZE}."),
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(
                description="A filter or `sort` value the inventory does not know, or a `page` or "
                "`page_size` that is not a whole number"
            ),
        },
    )
    def get(self, request: Request, org_slug: str) -> Response:
        organization = self.organization
        form, filters = inventory_filters(request._request, organization_members(organization))
        if request.GET and not form.is_valid():
            raise exceptions.ValidationError(form.errors)
        try:
            size = min(max(int(request.GET.get("page_size", 50)), 1), MAX_PAGE_SIZE)
            number = int(request.GET.get("page", 1))
        except ValueError:
            raise exceptions.ValidationError({"page": "Use whole numbers for page and page_size."}) from None
        now = timezone.now()
        paginator = Paginator(inventory_list(organization, filters, now=now), size)
        try:
            page = paginator.page(number)
        except EmptyPage:
            raise exceptions.NotFound("No such page.") from None
        rows = inventory_rows(list(page.object_list), org_slug=organization.slug, now=now)
        return Response(
            {
                "count": paginator.count,
                "page": page.number,
                "pages": paginator.num_pages,
                "results": [row.as_dict() for row in rows],
            }
        )
