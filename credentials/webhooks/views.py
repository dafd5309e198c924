"""Dashboard pages for webhooks: endpoints, the one-time secret, test events and delivery history.

Owners and admins only, like the credential policy: an endpoint receives every lifecycle
event of the organisation. Creating an endpoint and rotating its secret reveal a secret, and
changing or deleting one changes who is told about leaks and revocations: all need a step-up.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from credentials.webhooks import services
from credentials.webhooks.forms import (
    WebhookEndpointCreateForm,
    WebhookEndpointEditForm,
    WebhookSecretRotateForm,
)
from credentials.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from credentials.webhooks.selectors import (
    webhook_deliveries_for,
    webhook_delivery_get,
    webhook_endpoint_get,
    webhook_endpoints_for,
)
from credentials.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from portal.outcomes import add_service_errors, flash_outcome
from portal.reveal import secret_reveal
from portal.submissions import OnceForm, submission_of
from portal.tenancy import authorized, found_or_404

PAGE_SIZE = 25


def _endpoint_or_404(request: HttpRequest, endpoint_id: int) -> WebhookEndpoint:
    return found_or_404(
        webhook_endpoint_get, request.organization, endpoint_id, missing="No such webhook endpoint."
    )


def _detail(request: HttpRequest, endpoint: WebhookEndpoint) -> HttpResponse:
    return redirect("org-webhook-detail", org_slug=request.organization.slug, endpoint_id=endpoint.pk)


def _already_shown(request: HttpRequest, endpoint_id: int | str) -> HttpResponse:
    messages.info(
        request, "That secret was already shown once; it cannot be shown again. Rotate it if it is lost."
    )
    if not endpoint_id:  # the same form is still being handled by another request
        return redirect("org-webhooks", org_slug=request.organization.slug)
    return redirect("org-webhook-detail", org_slug=request.organization.slug, endpoint_id=endpoint_id)


def _reveal(request: HttpRequest, endpoint: WebhookEndpoint, secret: str, *, rotated: bool) -> HttpResponse:
    return secret_reveal(
        request,
        "credentials/webhooks/reveal.html",
        {
            "endpoint": endpoint,
            "secret": secret,
            "rotated": rotated,
            "signature_header": SIGNATURE_HEADER,
            "timestamp_header": TIMESTAMP_HEADER,
        },
    )


def _secret_form_page(
    request: HttpRequest,
    form: OnceForm,
    make: Callable[[], tuple[WebhookEndpoint, str]],
    *,
    template: str,
    context: dict | None = None,
    rotated: bool,
    endpoint_id: int | None = None,
) -> HttpResponse:
    """Show the form; on a valid POST create or rotate a secret once per form sent, and show it.

    A resend of the same form shows no second secret: it goes to the endpoint made the first
    time (`endpoint_id` when the page is already about one). Invalid input or a refusal shows
    the form again (400), the refusal on it.
    """
    context = {"form": form, **(context or {})}
    if request.method != "POST":
        return render(request, template, context)
    if form.is_valid():
        submission = submission_of(request, form)
        used = submission.begin()
        if used is not None:
            return _already_shown(request, used if endpoint_id is None else endpoint_id)
        try:
            endpoint, secret = submission.run(make, remember=lambda made: made[0].pk)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _reveal(request, endpoint, secret, rotated=rotated)
    return render(request, template, context, status=400)


@authorized("webhooks.manage")
def webhook_list(request: HttpRequest) -> HttpResponse:
    """List the organisation's webhook endpoints."""
    endpoints = list(webhook_endpoints_for(request.organization))
    return render(
        request, "credentials/webhooks/list.html", {"endpoints": endpoints, "labels": dict(EventType.choices)}
    )


@authorized("webhooks.change")
def webhook_create(request: HttpRequest) -> HttpResponse:
    """Register an endpoint and show its signing secret once, in the response to the form."""
    form = WebhookEndpointCreateForm(request.POST if request.method == "POST" else None)
    return _secret_form_page(
        request,
        form,
        lambda: services.webhook_endpoint_create(
            organization=request.organization,
            url=form.cleaned_data["url"],
            description=form.cleaned_data["description"],
            event_types=form.cleaned_data["event_types"],
            actor=request.user,
        ),
        template="credentials/webhooks/create.html",
        rotated=False,
    )


def _detail_page(
    request: HttpRequest,
    endpoint: WebhookEndpoint,
    form: WebhookEndpointEditForm,
    *,
    page_number: str | None,
    status: int = 200,
) -> HttpResponse:
    """Render an endpoint's page: its settings form and one page of its deliveries, newest first."""
    page = Paginator(webhook_deliveries_for(endpoint), PAGE_SIZE).get_page(page_number)
    return render(
        request,
        "credentials/webhooks/detail.html",
        {"endpoint": endpoint, "form": form, "page": page, "labels": dict(EventType.choices)},
        status=status,
    )


@authorized("webhooks.manage")
def webhook_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Show an endpoint, its settings form and its deliveries, newest first."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    form = WebhookEndpointEditForm(
        initial={
            "event_types": endpoint.event_types,
            "description": endpoint.description,
            "active": endpoint.active,
        }
    )
    return _detail_page(request, endpoint, form, page_number=request.GET.get("page"))


@require_POST
@authorized("webhooks.change")
def webhook_edit(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Change an endpoint's events, description or active flag."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    form = WebhookEndpointEditForm(request.POST)
    if form.is_valid():
        try:
            services.webhook_endpoint_update(
                endpoint=endpoint,
                actor=request.user,
                event_types=form.cleaned_data["event_types"],
                description=form.cleaned_data["description"],
                active=form.cleaned_data["active"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "The endpoint was saved.")
            return _detail(request, endpoint)
    return _detail_page(request, endpoint, form, page_number=None, status=400)


@authorized("webhooks.change")
def webhook_rotate(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Give the endpoint a new secret (with an overlap) and show it once."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    form = WebhookSecretRotateForm(request.POST if request.method == "POST" else None)
    return _secret_form_page(
        request,
        form,
        lambda: services.webhook_endpoint_rotate_secret(
            endpoint=endpoint, actor=request.user, overlap_hours=form.cleaned_data["overlap_hours"]
        ),
        template="credentials/webhooks/rotate.html",
        context={"endpoint": endpoint},
        rotated=True,
        endpoint_id=endpoint.pk,
    )


@authorized("webhooks.change")
def webhook_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Delete an endpoint and its delivery history, after a confirmation."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    if request.method == "POST":
        services.webhook_endpoint_delete(endpoint=endpoint, actor=request.user)
        messages.success(request, f"The endpoint {endpoint.url} was deleted.")
        return redirect("org-webhooks", org_slug=request.organization.slug)
    return render(request, "credentials/webhooks/delete.html", {"endpoint": endpoint})


@require_POST
@authorized("webhooks.manage")
def webhook_ping(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Queue a `webhook.ping` test event; the sender delivers it on its next run."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    flash_outcome(
        request,
        lambda: services.webhook_endpoint_ping(endpoint=endpoint, actor=request.user),
        "A test event was queued. It appears below once the sender has run.",
    )
    return _detail(request, endpoint)


@require_POST
@authorized("webhooks.manage")
def webhook_delivery_retry(request: HttpRequest, endpoint_id: int, delivery_id: int) -> HttpResponse:
    """Ask for another attempt at a failed or abandoned delivery."""
    try:
        delivery = webhook_delivery_get(request.organization, endpoint_id, delivery_id)
    except WebhookDelivery.DoesNotExist:
        raise Http404("No such delivery.") from None
    flash_outcome(
        request,
        lambda: services.webhook_delivery_retry(delivery=delivery, actor=request.user),
        "The delivery will be sent again at the sender's next run.",
    )
    return _detail(request, delivery.endpoint)
