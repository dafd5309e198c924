"""URLs of the benchmark peers, at the same paths as Identity Portal's."""

from django.urls import path
from oauth2_provider.views import TokenView

from peers.views import WhoAmIView

urlpatterns = [
    path("oauth/token", TokenView.as_view(), name="token"),
    path("api/v1/whoami", WhoAmIView.as_view(), name="whoami"),
]
