"""Device registration: a user lists, adds and removes their own authentication devices.

Each device is a target of every notification about the user's requests, so a user (or a
stolen consent token) may register only ``CIBA["MAX_DEVICES_PER_USER"]`` of them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import router, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.settings import api_settings

from ..conf import ciba_settings
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
        user = self.request.user
        limit = ciba_settings.MAX_DEVICES_PER_USER
        db = router.db_for_write(Device)
        with transaction.atomic(using=db):
            # The user's row is locked so that concurrent registrations are counted in turn.
            list(get_user_model().objects.using(db).select_for_update().filter(pk=user.pk).values_list("pk"))
            if Device.objects.using(db).filter(user=user).count() >= limit:
                raise serializers.ValidationError(
                    {
                        api_settings.NON_FIELD_ERRORS_KEY: [
                            f"At most {limit} devices can be registered; remove one first."
                        ]
                    }
                )
            serializer.save(user=user)
