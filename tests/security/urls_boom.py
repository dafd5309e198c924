"""The portal's URLs plus a view that fails under each endpoint family, to see the 500 answers
production serves (a page, OAuth JSON, DRF JSON), with the portal's own error handlers."""

from __future__ import annotations

from django.urls import path

from portal.urls import handler400, handler404, handler500  # noqa: F401  (this urlconf's handlers)
from portal.urls import urlpatterns as portal_urlpatterns


def boom(request):
    raise RuntimeError(f"forced failure for {request.get_full_path()}")


urlpatterns = [path("boom/", boom), path("api/v1/boom", boom), path("oauth/boom", boom), *portal_urlpatterns]
