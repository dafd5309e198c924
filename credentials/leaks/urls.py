"""The secret-scanning endpoint (pinned path)."""

from __future__ import annotations

from django.urls import path

from credentials.leaks.views import SecretScanningReportView

urlpatterns = [
    path(
        "api/v1/secret-scanning/reports",
        SecretScanningReportView.as_view(),
        name="secret-scanning-reports",
    ),
]
