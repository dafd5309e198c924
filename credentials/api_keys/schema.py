"""OpenAPI description of API-key authentication (drf-spectacular extension)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "credentials.api_keys.authentication.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer ipk_…`."},
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key."},
        ]

    def get_security_requirement(self, auto_schema):
        # Either header will do: two alternatives, not both at once.
        return [{name: []} for name in self.name]
