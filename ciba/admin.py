"""Django admin: CIBA client registration and read-only request browsing.

Enable the client admin through DOT's own setting rather than by re-registering the model
(re-registering depends on ``INSTALLED_APPS`` order)::

    OAUTH2_PROVIDER = {..., "APPLICATION_ADMIN_CLASS": "ciba.admin.CibaApplicationAdmin"}
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from oauth2_provider.admin import ApplicationAdmin, mask_credential

from . import services, user_codes
from .conf import ciba_settings
from .models import AuthenticationRequest, CallbackDelivery, ConsentClient, Device, SigningKey, UserCode


class BlankJSONField(forms.JSONField):
    """Shows a missing value as an empty box rather than ``null``."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


CIBA_FIELDS = (
    "backchannel_token_delivery_mode",
    "backchannel_client_notification_endpoint",
    "token_endpoint_auth_method",
    "token_endpoint_auth_signing_alg",
    "backchannel_authentication_request_signing_alg",
    "backchannel_user_code_parameter",
    "jwks",
    "jwks_uri",
)


class CibaApplicationAdmin(ApplicationAdmin):
    """DOT's application admin with the CIBA registration metadata in its own fieldset.

    Validation lives in the model's ``clean()``, which keys each error by field, so the
    form shows every problem next to the field to fix.
    """

    list_display = ApplicationAdmin.list_display + ("backchannel_token_delivery_mode",)
    #: A new client starts as one CIBA can use: confidential, with ID tokens signed by the server's key.
    new_client_defaults = {"client_type": "confidential", "algorithm": "RS256"}
    list_filter = ApplicationAdmin.list_filter + ("backchannel_token_delivery_mode",)
    radio_fields = {**ApplicationAdmin.radio_fields, "backchannel_token_delivery_mode": admin.HORIZONTAL}
    search_fields = ApplicationAdmin.search_fields + ("client_id",)
    # A URL typed without a scheme is an https URL: the endpoints must be https anyway. An
    # empty JWKS is an empty box, not the JSON text "null".
    formfield_overrides = {
        models.URLField: {"assume_scheme": "https"},
        models.JSONField: {"form_class": BlankJSONField},
    }
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "user",
                    "client_id",
                    "client_type",
                    "authorization_grant_type",
                    "client_secret",
                    "hash_client_secret",
                    "algorithm",
                    "skip_authorization",
                )
            },
        ),
        (
            _("CIBA"),
            {
                "fields": CIBA_FIELDS,
                "description": _(
                    "Client-initiated backchannel authentication. Leave the delivery mode empty for "
                    "clients that do not use CIBA."
                ),
            },
        ),
        (
            _("Redirects and origins"),
            {
                "fields": ("redirect_uris", "post_logout_redirect_uris", "allowed_origins"),
                "classes": ("collapse",),
            },
        ),
        (_("Registration"), {"fields": ("registration_source", "cimd_expires_at")}),
    )

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {**self.new_client_defaults, **super().get_changeform_initial_data(request)}

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Offer only the delivery modes this server supports (``CIBA["DELIVERY_MODES"]``)."""
        if db_field.name == "backchannel_token_delivery_mode":
            supported = set(ciba_settings.DELIVERY_MODES)
            kwargs["choices"] = [("", _("None (not a CIBA client)"))] + [
                (value, label) for value, label in db_field.choices if value in supported
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)


def _user_search_fields() -> tuple[str, ...]:
    user_model = get_user_model()
    fields = (f"user__{user_model.USERNAME_FIELD}",)
    email = user_model.get_email_field_name()
    if email != user_model.USERNAME_FIELD and any(f.name == email for f in user_model._meta.get_fields()):
        fields += (f"user__{email}",)
    return fields


@admin.register(AuthenticationRequest)
class AuthenticationRequestAdmin(admin.ModelAdmin):
    """Read-only: requests change state only through the protocol and consent API.

    ``auth_req_id`` and ``client_notification_token`` are credentials, so they are never
    shown whole nor searchable (a search would put them in URLs and access logs).
    """

    list_display = (
        "masked_auth_req_id",
        "client",
        "user",
        "state",
        "device_notification_status",
        "created_at",
        "expires_at",
    )
    list_filter = (
        "state",
        "device_notification_status",
        "hint_kind",
        "client__backchannel_token_delivery_mode",
    )
    list_select_related = ("client", "user")
    search_fields = ("client__name", "client__client_id") + _user_search_fields()
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "masked_auth_req_id",
        "client",
        "user",
        "state",
        "hint_kind",
        "scope",
        "granted_scope",
        "acr_values",
        "acr_essential",
        "acr",
        "amr",
        "binding_message",
        "masked_client_notification_token",
        "requested_expiry",
        "interval",
        "created_at",
        "expires_at",
        "decided_at",
        "decided_by",
        "issued_at",
        "last_polled_at",
        "updated_at",
        "device_notification_status",
        "device_notification_attempts",
        "device_notification_error",
        "device_notified_at",
    )
    readonly_fields = fields
    actions = ("resend_device_notification",)

    @admin.action(description=_("Re-send the device notification (pending requests only)"))
    def resend_device_notification(self, request: HttpRequest, queryset: Any) -> None:
        pending = [ar for ar in queryset if services.resend_device_notification(ar)]
        self.message_user(
            request,
            ngettext(
                "%(count)d notification re-sent; %(skipped)d request(s) no longer pending were skipped.",
                "%(count)d notifications re-sent; %(skipped)d request(s) no longer pending were skipped.",
                len(pending),
            )
            % {"count": len(pending), "skipped": queryset.count() - len(pending)},
        )

    @admin.display(description=_("auth_req_id"))
    def masked_auth_req_id(self, obj: AuthenticationRequest) -> str:
        return mask_credential(obj.auth_req_id)

    @admin.display(description=_("client notification token"))
    def masked_client_notification_token(self, obj: AuthenticationRequest) -> str:
        return mask_credential(obj.client_notification_token) or "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    """Devices are registered by their users; staff may look and remove, never read tokens."""

    list_display = ("public_id", "user", "kind", "label", "created_at", "last_seen_at")
    list_filter = ("kind",)
    search_fields = _user_search_fields() + ("label",)
    list_select_related = ("user",)
    fields = ("public_id", "user", "kind", "label", "created_at", "last_seen_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(admin.ModelAdmin):
    """Ping and push callbacks: their delivery state, and a way to retry failed ones.

    The sealed push payload (tokens) is never shown.
    """

    list_display = (
        "pk",
        "request",
        "kind",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("state", "kind")
    list_select_related = ("request",)
    search_fields = ("request__client__name", "request__client__client_id")
    fields = (
        "request",
        "kind",
        "error_code",
        "state",
        "attempts",
        "last_status",
        "last_error",
        "next_attempt_at",
        "lease_until",
        "delivered_at",
        "created_at",
    )
    readonly_fields = fields
    actions = ("retry_deliveries",)

    @admin.action(description=_("Retry the selected failed callbacks now"))
    def retry_deliveries(self, request: HttpRequest, queryset: Any) -> None:
        failed = services.retry_failed_callbacks(queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            _("%(count)d failed callback(s) queued again; failed token pushes are final and were skipped.")
            % {"count": len(failed)},
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UserCodeForm(forms.ModelForm):
    """Admins set a user's code without ever seeing one: the form takes a new code and hashes it."""

    new_code = forms.CharField(
        label=_("new user code"),
        widget=forms.PasswordInput(render_value=False),
        strip=False,
        help_text=_("Tell the user through a channel you trust; it is stored hashed and never shown."),
    )

    class Meta:
        model = UserCode
        fields = ("user",)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        code = data.get("new_code")
        user = data.get("user") or getattr(self.instance, "user", None)
        if code:
            try:
                user_codes.clean(code, user=user)
            except user_codes.UnacceptableUserCode as exc:
                self.add_error("new_code", str(exc))
        return data


@admin.register(UserCode)
class UserCodeAdmin(admin.ModelAdmin):
    """User codes (CIBA §7.1.2): staff may set one for a user, unlock it or remove it."""

    form = UserCodeForm
    list_display = ("user", "updated_at", "failed_attempts", "locked_until")
    search_fields = _user_search_fields()
    list_select_related = ("user",)
    readonly_fields = ("updated_at", "failed_attempts", "locked_until")
    actions = ("unlock",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (("user",) if obj is not None else ()) + self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The service hashes the code and resets failures; the form's instance is not saved itself.
        user = obj.user if change else form.cleaned_data["user"]
        saved = user_codes.set_user_code(user, form.cleaned_data["new_code"])  # the form checked the code
        obj.pk, obj.code = saved.pk, saved.code

    @admin.action(description=_("Unlock the selected user codes"))
    def unlock(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset.select_related("user"):
            user_codes.unlock(row.user)
        self.message_user(request, _("%(count)d user code(s) unlocked.") % {"count": queryset.count()})


@admin.register(ConsentClient)
class ConsentClientAdmin(admin.ModelAdmin):
    """The applications allowed the consent scope: the site's own authentication-device apps.

    Adding one lets it obtain consent-scoped tokens; removing one makes the consent API refuse
    the tokens it holds at once.
    """

    list_display = ("application", "created_at")
    list_select_related = ("application",)
    search_fields = ("application__name", "application__client_id")
    raw_id_fields = ("application",)


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """ID-token signing keys, to look at only: ``manage.py ciba_keys`` adds, rotates and prunes
    them (the published set must change in order), and the private key is never shown."""

    list_display = ("kid", "kty", "state", "created_at", "activated_at", "retired_at")
    list_filter = ("kty", "state")
    search_fields = ("kid",)
    fields = list_display
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
