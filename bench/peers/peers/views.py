"""The peer's equivalent of Identity Portal's whoami: djangorestframework-api-key's HasAPIKey."""

from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.permissions import HasAPIKey


class WhoAmIView(APIView):
    """Answer who the caller is, guarded by HasAPIKey (``Authorization: Api-Key <key>``)."""

    # The key is the only credential, as on Identity Portal's whoami.
    authentication_classes = []
    permission_classes = [HasAPIKey]

    def get(self, request):
        # HasAPIKey has already verified the key; its public prefix needs no second lookup.
        prefix = request.META["HTTP_AUTHORIZATION"].partition(" ")[2].partition(".")[0]
        return Response({"credential_type": "api_key", "prefix": prefix})
