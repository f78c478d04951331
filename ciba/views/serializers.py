"""What the authentication device sees of a request, and what it sends about itself."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from oauth2_provider.scopes import get_scopes_backend
from rest_framework import serializers

from .. import assurance, services
from ..errors import CibaError, InvalidRequest
from ..models import AuthenticationRequest, Device, Passkey
from ..outbound import validate_outbound_url


class ScopeSerializer(serializers.Serializer):
    scope = serializers.CharField()
    description = serializers.CharField()


class DetailRenderingSerializer(serializers.Serializer):
    type = serializers.CharField()
    text = serializers.CharField(help_text="Translated, locale-formatted, several lines: show it whole.")
    summary = serializers.CharField(help_text="One short line, as in push notifications.")


#: RFC 9396 §2: an array of objects, each with at least a string ``type``.
AUTHORIZATION_DETAILS_SCHEMA = {
    "type": "array",
    "items": {"type": "object", "properties": {"type": {"type": "string"}}, "required": ["type"]},
}


@extend_schema_field(AUTHORIZATION_DETAILS_SCHEMA)
class AuthorizationDetailsField(serializers.JSONField):
    """RFC 9396 authorization details; checked by ``ciba.authorization_details``, not here."""


class RequiredAuthenticationSerializer(serializers.Serializer):
    required_level = serializers.ChoiceField(
        choices=assurance.LEVELS,
        help_text="The weakest authentication that can approve this request (docs/authentication.md): "
        "session (a tap), password, passkey, passkey_device_bound.",
    )
    required_acr = serializers.CharField(
        help_text="The acr that level achieves here; empty when it achieves none."
    )
    methods = serializers.ListField(
        child=serializers.ChoiceField(choices=("session", "password", "passkey")),
        help_text="What the device may do to approve, weakest first: session (approve with no "
        "authentication object), password or passkey (the approval's authentication.method).",
    )


#: The consent API's ``authentication`` object (ApprovalSerializer): what the user did now.
AUTHENTICATION_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "method": {"type": "string", "enum": ["passkey"]},
                "credential": {
                    "type": "object",
                    "description": "The WebAuthn assertion, as PublicKeyCredential.toJSON() gives it "
                    "(AuthenticationResponseJSON), over the options of authentication-options.",
                },
            },
            "required": ["method", "credential"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "method": {"type": "string", "enum": ["password"]},
                "password": {"type": "string", "maxLength": 4096},
            },
            "required": ["method", "password"],
            "additionalProperties": False,
        },
    ],
}

#: Longest password the consent API reads (a longer one is nobody's: refused unread).
PASSWORD_MAX_LENGTH = 4096


@extend_schema_field(AUTHENTICATION_SCHEMA)
class AuthenticationProofField(serializers.JSONField):
    """How the user authenticated this approval: a passkey assertion or the password re-entered.

    Only the shape is checked here; the approval policy verifies it. A malformed object is the
    protocol's ``invalid_request`` (400), never a field error or a 500, whatever its JSON.
    """

    MEMBERS = {"passkey": "credential", "password": "password"}

    def to_internal_value(self, data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise InvalidRequest(
                "authentication must be an object: method passkey with the credential, or method "
                "password with the password."
            )
        method = data.get("method")
        if not isinstance(method, str) or method not in self.MEMBERS:
            raise InvalidRequest("authentication.method must be passkey or password.")
        member = self.MEMBERS[method]
        if set(data) != {"method", member}:
            raise InvalidRequest(f"authentication with method {method} has two members: method and {member}.")
        value = data.get(member)
        if method == "passkey" and not isinstance(value, dict):
            raise InvalidRequest(
                "authentication.credential must be the WebAuthn assertion, as "
                "PublicKeyCredential.toJSON() gives it."
            )
        if method == "password" and (not isinstance(value, str) or len(value) > PASSWORD_MAX_LENGTH):
            raise InvalidRequest(
                f"authentication.password must be a string of at most {PASSWORD_MAX_LENGTH} characters."
            )
        return {"method": method, member: value}


class AuthenticationRequestSerializer(serializers.ModelSerializer):
    """Everything a person needs to decide, and nothing a client should keep secret.

    A request with ``authorization_details`` (RFC 9396) carries their rendering in the
    caller's language and its ``authorization_details_digest``: a device approves what it
    displayed by sending that digest back as ``displayed_details_hash``.
    """

    client_name = serializers.SerializerMethodField()
    scopes = serializers.SerializerMethodField()
    granted_scopes = serializers.SerializerMethodField()
    acr_values = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()
    authorization_details = AuthorizationDetailsField(
        read_only=True,
        help_text="RFC 9396: what the client asks the user to approve, as validated on arrival.",
    )
    authorization_details_display = serializers.SerializerMethodField(
        help_text="How to show each of authorization_details to the user, in order."
    )
    authorization_details_digest = serializers.SerializerMethodField(
        help_text="SHA-256 of authorization_details and their display: send it back as "
        "displayed_details_hash when approving. Empty when there are no details, or when they "
        "are of a type this server no longer supports (then the request can only be denied)."
    )
    approved_authorization_details = AuthorizationDetailsField(
        read_only=True, allow_null=True, help_text="What the user approved (null until approved)."
    )
    request_context = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="CIBA §7.1: what the client says about the request's context.",
    )
    authentication = serializers.SerializerMethodField(
        help_text="What approving this request needs, known before approving: the level (the "
        "site's, the client's and the profile's floor, raised by the request's acr_values), the "
        "acr it achieves and the methods that reach it. A tap below it is refused with "
        "step_up_required."
    )

    class Meta:
        model = AuthenticationRequest
        fields = (
            "auth_req_id",
            "client_name",
            "scopes",
            "granted_scopes",
            "binding_message",
            "authorization_details",
            "authorization_details_display",
            "authorization_details_digest",
            "approved_authorization_details",
            "displayed_details_hash",
            "request_context",
            "acr_values",
            "authentication",
            "state",
            "created_at",
            "expires_at",
            "decided_at",
            "cancel_reason",
            "reported_at",
            "device_notification_status",
        )
        read_only_fields = fields
        extra_kwargs = {
            "cancel_reason": {
                "help_text": "Why a cancelled request was withdrawn: client (its client cancelled it) or "
                "superseded (a newer request from the same client replaced it); empty otherwise."
            },
            "reported_at": {
                "help_text": 'When the user said "I did not ask for this" (null: never reported).'
            },
        }

    def get_fields(self) -> dict[str, serializers.Field]:
        """ModelSerializer's fields, built once per class and copied for each instance.

        DRF rebuilds them from the model on every instantiation (the approve request's answer
        paid that on each request, issue 29); they depend only on the class and its model, not
        on the instance or its context. Each instance gets its own copies, which it binds to
        itself; a field holding other bound fields (a child, a nested serializer) is copied
        whole."""
        built = type(self).__dict__.get("_built_fields")  # this class's own, never a parent's
        if built is None:
            built = super().get_fields()
            type(self)._built_fields = built
        return {name: _fresh(field) for name, field in built.items()}

    def _display(self, obj: AuthenticationRequest) -> services.DetailsDisplay | None:
        """Rendered once per object and response (both fields need it)."""
        cache = self.context.setdefault("_details_display", {})
        if obj.pk not in cache:
            try:
                cache[obj.pk] = services.details_display(obj)
            except CibaError:
                # A type that cannot render what it once validated: nothing to show, nothing to
                # approve (an approval gets the same error); the request itself stays readable.
                cache[obj.pk] = None
        return cache[obj.pk]

    @extend_schema_field(DetailRenderingSerializer(many=True))
    def get_authorization_details_display(self, obj: AuthenticationRequest) -> list[dict[str, Any]]:
        display = self._display(obj)
        return display.rendering if display else []

    @extend_schema_field(serializers.CharField())
    def get_authorization_details_digest(self, obj: AuthenticationRequest) -> str:
        display = self._display(obj)
        return display.digest if display and not display.unsupported else ""

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

    @extend_schema_field(RequiredAuthenticationSerializer)
    def get_authentication(self, obj: AuthenticationRequest) -> dict[str, Any]:
        required = assurance.required_level(obj)
        return {
            "required_level": required,
            "required_acr": assurance.acr_for(required),
            "methods": assurance.methods_for(required),
        }


def _fresh(field: serializers.Field) -> serializers.Field:
    """An unbound copy of a field built once: shallow (binding only sets attributes of the copy)
    unless the field holds fields bound to it, which a shallow copy would share."""
    if isinstance(field, serializers.BaseSerializer) or any(
        hasattr(field, holder) for holder in ("child", "child_relation", "fields")
    ):
        return copy.deepcopy(field)
    return copy.copy(field)


class TransactionSerializer(serializers.Serializer):
    """What an approval approves: the body of authentication-options, and of approve with it
    (the passkey's challenge is bound to exactly these values)."""

    scopes = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Approve only these of the requested scopes (openid is always kept). Default: all.",
    )
    authorization_details = AuthorizationDetailsField(
        required=False,
        allow_null=True,
        help_text="Approve less than the requested authorization_details, where their types allow it "
        "(e.g. a lower amount). Default (or null): all, as requested.",
    )
    displayed_details_hash = serializers.RegexField(
        r"^[0-9a-f]{64}\Z",
        required=False,
        help_text="The authorization_details_digest of what the device displayed; required when the "
        "request has authorization_details.",
    )


class ApprovalSerializer(TransactionSerializer):
    authentication = AuthenticationProofField(
        required=False,
        allow_null=True,
        help_text="How the user authenticated this approval now: a passkey assertion over the "
        "options of authentication-options (sent with the same scopes, authorization_details and "
        "displayed_details_hash), or the password re-entered. Absent: a tap in the signed-in "
        "session. The request's authentication member says which the approval needs.",
    )


class PasskeySerializer(serializers.ModelSerializer):
    """A passkey as its owner sees it: never the key, the credential ID or the user handle."""

    name = serializers.CharField(max_length=64, allow_blank=True, required=False)
    device_bound = serializers.BooleanField(
        read_only=True,
        help_text="The authenticator says the key cannot leave it (backup-eligible flag clear): "
        "approvals with it reach passkey_device_bound.",
    )
    disabled = serializers.SerializerMethodField(
        help_text="Its sign count went backwards (a clone is suspected): it is refused from then on."
    )

    class Meta:
        model = Passkey
        fields = ("id", "name", "created_at", "last_used_at", "device_bound", "backed_up", "disabled")
        read_only_fields = ("id", "created_at", "last_used_at", "device_bound", "backed_up", "disabled")

    @extend_schema_field(serializers.BooleanField())
    def get_disabled(self, obj: Passkey) -> bool:
        return obj.cloned_at is not None


#: RFC 8291 §3.2: the authentication secret is 16 octets.
AUTH_SECRET_SIZE = 16
#: RFC 8291 §3.1: an uncompressed P-256 point (0x04, then x and y of 32 octets each).
P256_POINT_SIZE = 65
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,128}={0,2}")


#: What ``_web_push_subscription`` accepts, for the OpenAPI schema (and the clients and fuzzers
#: that read it).
WEB_PUSH_SUBSCRIPTION_SCHEMA = {
    "type": "object",
    "description": "The browser's PushSubscription.toJSON(); required for webpush devices.",
    "properties": {
        "endpoint": {"type": "string", "format": "uri", "maxLength": 2000},
        "keys": {
            "type": "object",
            "properties": {
                "p256dh": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_-]{87}=?$",
                    "description": "The uncompressed P-256 public key (65 bytes), base64url.",
                },
                "auth": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_-]{22}(==)?$",
                    "description": "The authentication secret (16 bytes), base64url.",
                },
            },
            "required": ["p256dh", "auth"],
        },
    },
    "required": ["endpoint", "keys"],
}


@extend_schema_field(WEB_PUSH_SUBSCRIPTION_SCHEMA)
class WebPushSubscriptionField(serializers.JSONField):
    """Any JSON on the way in (``DeviceSerializer.validate`` checks it against the kind)."""


class DeviceSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    subscription = WebPushSubscriptionField(write_only=True, required=False, allow_null=True)

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
    """A browser's PushSubscription.toJSON(): the push service's endpoint and the p256dh and
    auth keys (RFC 8291 §3), checked now rather than when a notification fails to encrypt.

    The endpoint is a URL the notifier will POST to, so it gets the policy of every outbound
    URL (``ciba.outbound``: public hosts unless ``CALLBACK_ALLOW_PRIVATE_NETWORKS``, no
    credentials); and https always, whatever ``CALLBACK_ALLOW_HTTP`` says: a push service is
    https (RFC 8030 §8), and a browser hands out nothing else. Keys are stored in their
    canonical unpadded base64url form.
    """
    if not isinstance(value, dict):
        raise serializers.ValidationError({"subscription": "A Web Push subscription object is required."})
    endpoint, keys = value.get("endpoint"), value.get("keys")
    if not isinstance(endpoint, str) or len(endpoint) > 2000 or not endpoint.isprintable():
        raise serializers.ValidationError({"subscription": "endpoint must be an https URL."})
    try:
        validate_outbound_url(endpoint)
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"subscription": f"endpoint: {' '.join(exc.messages)}"}) from None
    if urlsplit(endpoint).scheme != "https":
        raise serializers.ValidationError({"subscription": "endpoint must be an https URL."})
    if not isinstance(keys, dict) or not all(
        isinstance(keys.get(k), str) and keys[k] for k in ("p256dh", "auth")
    ):
        raise serializers.ValidationError({"subscription": "keys.p256dh and keys.auth are required."})
    p256dh, auth = _base64url(keys["p256dh"]), _base64url(keys["auth"])
    if p256dh is None or not _is_p256_point(p256dh):
        raise serializers.ValidationError(
            {"subscription": "keys.p256dh must be an uncompressed P-256 public key (65 bytes), base64url."}
        )
    if auth is None or len(auth) != AUTH_SECRET_SIZE:
        raise serializers.ValidationError(
            {"subscription": f"keys.auth must be {AUTH_SECRET_SIZE} bytes, base64url."}
        )
    return {"endpoint": endpoint, "keys": {"p256dh": _encode(p256dh), "auth": _encode(auth)}}


def _base64url(text: str) -> bytes | None:
    """The bytes of padded or unpadded base64url (as browsers send it); ``None`` if it is not."""
    if not _BASE64URL.fullmatch(text):
        return None
    unpadded = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error:
        return None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _is_p256_point(raw: bytes) -> bool:
    if len(raw) != P256_POINT_SIZE or raw[0] != 0x04:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return False  # not on the curve
    return True


class ClientBlockSerializer(serializers.Serializer):
    """One client the user blocked from asking them: who, since when. The client's id is what
    ``DELETE /ciba/blocks/{client_id}/`` takes to lift the block."""

    client_id = serializers.CharField(source="client.client_id", read_only=True)
    client_name = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    reported_request = serializers.SerializerMethodField(
        help_text="The auth_req_id of the request reported when blocking (null if none, or deleted)."
    )

    def get_client_name(self, obj: Any) -> str:
        return obj.client.name or obj.client.client_id

    def get_reported_request(self, obj: Any) -> str | None:
        request = obj.reported_request
        return request.auth_req_id if request is not None else None
