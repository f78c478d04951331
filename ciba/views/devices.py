"""Device registration: a user lists, adds and removes their own authentication devices."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from ..models import Device
from .consent import ConsentAuthenticationMixin
from .serializers import DeviceSerializer

DEVICE_ID = OpenApiParameter("device_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


@extend_schema(tags=["devices"])
@extend_schema_view(
    retrieve=extend_schema(parameters=[DEVICE_ID]), destroy=extend_schema(parameters=[DEVICE_ID])
)
class DeviceViewSet(
    ConsentAuthenticationMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's devices. Push tokens and subscriptions are write-only: they are credentials
    for reaching the device and are never echoed back."""

    serializer_class = DeviceSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "device_id"
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"
    pagination_class = None

    def get_queryset(self) -> Any:
        return Device.objects.filter(user=self.request.user).order_by("-created_at")

    def perform_create(self, serializer: DeviceSerializer) -> None:
        serializer.save(user=self.request.user)
