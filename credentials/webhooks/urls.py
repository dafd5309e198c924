"""URLs of the webhook pages, under /orgs/<org_slug>/webhooks/."""

from __future__ import annotations

from django.urls import path

from credentials.webhooks import views

urlpatterns = [
    path("", views.webhook_list, name="org-webhooks"),
    path("new/", views.webhook_create, name="org-webhook-create"),
    path("<int:endpoint_id>/", views.webhook_detail, name="org-webhook-detail"),
    path("<int:endpoint_id>/edit/", views.webhook_edit, name="org-webhook-edit"),
    path("<int:endpoint_id>/rotate/", views.webhook_rotate, name="org-webhook-rotate"),
    path("<int:endpoint_id>/delete/", views.webhook_delete, name="org-webhook-delete"),
    path("<int:endpoint_id>/test/", views.webhook_ping, name="org-webhook-ping"),
    path(
        "<int:endpoint_id>/deliveries/<int:delivery_id>/retry/",
        views.webhook_delivery_retry,
        name="org-webhook-delivery-retry",
    ),
]
