"""What the authentication device sees of a request, and what it sends about itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema_field
from oauth2_provider.scopes import get_scopes_backend
from rest_framework import serializers

from ..models import AuthenticationRequest, Device


class ScopeSerializer(serializers.Serializer):
    scope = serializers.CharField()
    description = serializers.CharField()


class AuthenticationRequestSerializer(serializers.ModelSerializer):
    """Everything a person needs to decide, and nothing a client should keep secret."""

    client_name = serializers.SerializerMethodField()
    scopes = serializers.SerializerMethodField()
    granted_scopes = serializers.SerializerMethodField()
    acr_values = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()

    class Meta:
        model = AuthenticationRequest
        fields = (
            "auth_req_id",
            "client_name",
            "scopes",
            "granted_scopes",
            "binding_message",
            "acr_values",
            "state",
            "created_at",
            "expires_at",
            "decided_at",
            "device_notification_status",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_client_name(self, obj: AuthenticationRequest) -> str:
        return obj.client.name or obj.client.client_id

    def _describe(self, scopes: list[str]) -> list[dict[str, str]]:
        descriptions = get_scopes_backend().get_all_scopes()
        return [{"scope": s, "description": str(descriptions.get(s, s))} for s in scopes]

    @extend_schema_field(ScopeSerializer(many=True))
    def get_scopes(self, obj: AuthenticationRequest) -> list[dict[str, str]]:
        return self._describe(obj.scopes)

    @extend_schema_field(ScopeSerializer(many=True))
    def get_granted_scopes(self, obj: AuthenticationRequest) -> list[dict[str, str]]:
        return self._describe(obj.granted_scope.split())

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_acr_values(self, obj: AuthenticationRequest) -> list[str]:
        return obj.acr_values.split()

    @extend_schema_field(serializers.ChoiceField(choices=AuthenticationRequest.State.choices))
    def get_state(self, obj: AuthenticationRequest) -> str:
        return obj.effective_state()


class ApprovalSerializer(serializers.Serializer):
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Approve only these of the requested scopes (openid is always kept). Default: all.",
    )


class DeviceSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Device
        fields = ("id", "kind", "token", "subscription", "label", "created_at", "last_seen_at")
        read_only_fields = ("id", "created_at", "last_seen_at")
        extra_kwargs = {"token": {"write_only": True}, "subscription": {"write_only": True}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind")
        if kind == Device.Kind.WEBPUSH:
            attrs["subscription"] = _web_push_subscription(attrs.get("subscription"))
            attrs["token"] = ""
        else:
            token = attrs.get("token") or ""
            if not token or len(token) > 4096 or "\x00" in token:
                raise serializers.ValidationError(
                    {"token": "A push token of 1 to 4096 characters is required."}
                )
            attrs["subscription"] = None
        return attrs


def _web_push_subscription(value: Any) -> dict[str, Any]:
    """A browser's PushSubscription.toJSON(): an https endpoint and the p256dh and auth keys."""
    if not isinstance(value, dict):
        raise serializers.ValidationError({"subscription": "A Web Push subscription object is required."})
    endpoint, keys = value.get("endpoint"), value.get("keys")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme != "https" or len(endpoint) > 2000:
        raise serializers.ValidationError({"subscription": "endpoint must be an https URL."})
    if not isinstance(keys, dict) or not all(
        isinstance(keys.get(k), str) and keys[k] for k in ("p256dh", "auth")
    ):
        raise serializers.ValidationError({"subscription": "keys.p256dh and keys.auth are required."})
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}
