"""/api/v1/whoami answers every unusable credential, of either kind, identically."""

from __future__ import annotations

import pytest

from portal.principal import INVALID_CREDENTIAL

UNUSABLE = [
    {},
    {"HTTP_AUTHORIZATION": "Bearer"},
    {"HTTP_AUTHORIZATION": "Bearer not-a-credential"},
    {"HTTP_AUTHORIZATION": "Bearer ipk_live_0000000000000000000000000000000000000000000000000000"},
    {"HTTP_AUTHORIZATION": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0."},
    {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
    {"HTTP_X_API_KEY": "garbage"},
]


@pytest.mark.django_db
@pytest.mark.parametrize("headers", UNUSABLE)
def test_every_unusable_credential_gets_the_same_401(client, headers):
    response = client.get("/api/v1/whoami", **headers)
    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_CREDENTIAL, "code": "authentication_failed"}
    assert response["WWW-Authenticate"].startswith("Bearer")
