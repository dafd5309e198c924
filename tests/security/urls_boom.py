"""The portal's URLs plus one view that fails, to see the 500 page production serves."""

from __future__ import annotations

from django.urls import path

from portal.urls import urlpatterns as portal_urlpatterns


def boom(request):
    raise RuntimeError(f"forced failure for {request.get_full_path()}")


urlpatterns = [path("boom/", boom), *portal_urlpatterns]
