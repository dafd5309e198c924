"""What OPTIONS says a write takes."""

from __future__ import annotations

from rest_framework import serializers


class DescribesInput:
    """Mixin for viewsets: OPTIONS describes the input of the write a method would run.

    DRF's metadata describes `get_serializer()`, the representation a viewset answers with, so
    OPTIONS on a list showed a create's required fields as read-only. A viewset names each write
    action's input serializer in `input_serializers` (None for a write that takes no body), and
    OPTIONS describes that instead.
    """

    input_serializers: dict[str, type[serializers.Serializer] | None] = {}

    def get_serializer_class(self):
        if getattr(self, "action", None) == "metadata":
            # DRF's SimpleMetadata asks once per write method, on a copy of the request with it.
            action = (getattr(self, "action_map", None) or {}).get(self.request.method.lower())
            if action in self.input_serializers:
                return self.input_serializers[action] or serializers.Serializer
        return super().get_serializer_class()
