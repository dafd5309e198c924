"""docs/api-keys.md "Using a key": a key in a URL query (`?api_key=…` … "or a whole key under any
name") is refused, because URLs end up in logs, even when the request also sends it properly. The
check looked only at parameter values starting with `ipk_`: a whole key as a parameter's name,
after a `Bearer ` prefix or a space was served. A display prefix is still a fine search."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.test import Client

from portal.principal import INVALID_CREDENTIAL

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/whoami"


@pytest.mark.parametrize(
    "query",
    [
        "{key}",  # `?<key>`: the whole key is the query string
        "{key}=1",  # as a parameter's name
        "authorization={bearer}",  # `?authorization=Bearer <key>`, a common client mistake
        "q=%20{key}",  # with a leading space
    ],
)
def test_a_whole_key_anywhere_in_the_query_is_refused(make_key, query):
    _row, key = make_key()
    url = f"{WHOAMI}?{query.format(key=key, bearer=quote('Bearer ' + key))}"
    response = Client(HTTP_X_API_KEY=key).get(url)
    assert response.status_code == 401, f"{url} was served: the key sits in the URL (and the logs)"
    assert response.json() == {"detail": INVALID_CREDENTIAL, "code": "authentication_failed"}


def test_a_display_prefix_in_the_query_is_no_key(make_key):
    row, key = make_key()
    response = Client(HTTP_X_API_KEY=key).get(f"{WHOAMI}?q={row.display_prefix}")
    assert response.status_code == 200, response.content
