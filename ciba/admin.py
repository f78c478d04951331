"""Django admin: CIBA client registration and read-only request browsing.

Enable the client admin through DOT's own setting rather than by re-registering the model
(re-registering depends on ``INSTALLED_APPS`` order)::

    OAUTH2_PROVIDER = {..., "APPLICATION_ADMIN_CLASS": "ciba.admin.CibaApplicationAdmin"}
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename, get_user_model
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from oauth2_provider.admin import ApplicationAdmin, mask_credential
from oauth2_provider.forms import ApplicationForm

from . import authorization_details as rar
from . import constants, profile, registration_rules, services, subjects, user_codes
from .client_registration import initial_access_tokens
from .errors import CibaError, InvalidClientMetadata
from .models import (
    ApprovalEvidence,
    AuthenticationRequest,
    CallbackDelivery,
    ClientBlock,
    ConsentClient,
    Device,
    InitialAccessToken,
    Passkey,
    ResourceServer,
    SigningKey,
    UserCode,
    UserCodeFailures,
)
from .signals import passkey_removed


class BlankJSONField(forms.JSONField):
    """Shows a missing value as an empty box rather than ``null``."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class ListField(forms.CharField):
    """A list of strings (``contacts``) as one value a line (commas separate too)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(str(item) for item in value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:
        text = super().to_python(value) or ""
        return [item.strip() for line in text.splitlines() for item in line.split(",") if item.strip()]


class CibaApplicationForm(ApplicationForm):
    """DOT's form with several grants per client (RFC 7591 ``grant_types``).

    DOT's single ``authorization_grant_type`` is set from the grant types when they are
    listed (``registration_rules.dot_grant_type``), so the two never disagree; with none
    listed it is chosen as before and alone decides what the client may do.
    """

    grant_types = forms.MultipleChoiceField(
        choices=[(name, name) for name in registration_rules.REGISTRABLE_GRANT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("grant types"),
        help_text=_(
            "The grants this client may use, several at once (CIBA with client_credentials, say). "
            "Refresh tokens are issued only with refresh_token. None: the authorization grant type "
            "alone, as before."
        ),
    )
    contacts = ListField(
        required=False,
        label=_("contacts"),
        help_text=_("E-mail addresses of people responsible for it, one a line."),
    )
    authorization_details_types = forms.MultipleChoiceField(
        choices=[],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=_("authorization details types"),
        help_text=_(
            "The authorization_details types (RFC 9396) this client may send, among those the server "
            'supports (CIBA["AUTHORIZATION_DETAILS_TYPES"]). None: the client sends none.'
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("authorization_grant_type")
        if field is not None:
            field.required = False  # set from the grant types when they are listed (clean)
            field.help_text = _("Set from the grant types when they are listed.")
        types = self.fields.get("authorization_details_types")
        if types is not None:
            # Read now, not at import: the supported types are a setting. A stored type the
            # server no longer supports stays visible, marked, so saving names the rule it breaks.
            supported = rar.supported_types()
            stored = getattr(self.instance, "authorization_details_types", None)
            stored = [item for item in stored if isinstance(item, str)] if isinstance(stored, list) else []
            types.choices = [(name, name) for name in supported] + [
                (name, _("%(type)s (not supported by this server)") % {"type": name})
                for name in stored
                if name not in supported
            ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        listed = data.get("grant_types") or []
        # In the order the choices are offered: the stored list reads the same however ticked.
        order = registration_rules.REGISTRABLE_GRANT_TYPES
        listed = sorted(listed, key=lambda name: order.index(name) if name in order else len(order))
        data["grant_types"] = listed
        if listed and "authorization_grant_type" in self.fields:
            derived = registration_rules.dot_grant_type(listed)
            if derived:
                data["authorization_grant_type"] = derived
        if "authorization_grant_type" in self.fields and not data.get("authorization_grant_type"):
            if "authorization_grant_type" not in self.errors:
                self.add_error(
                    "authorization_grant_type", _("Choose the grant type, or list the grant types below.")
                )
        return data

    def _post_clean(self) -> None:
        """The sector identifier document is fetched and checked once the model is valid (its
        URLs are known then): it must list the client's redirect URIs and, for a CIBA client,
        the hosts of its ``jwks_uri`` and notification endpoint (``ciba.subjects``), as dynamic
        registration checks it."""
        super()._post_clean()
        if not self.errors and self.instance.sector_identifier_uri:
            try:
                subjects.check_client_sector(self.instance)
            except InvalidClientMetadata as exc:
                self.add_error("sector_identifier_uri", exc.description)


CIBA_FIELDS = (
    "backchannel_token_delivery_mode",
    "backchannel_client_notification_endpoint",
    "backchannel_authentication_request_signing_alg",
    "backchannel_user_code_parameter",
    "authorization_details_types",
    "approval_level",
)
CLIENT_AUTH_FIELDS = (
    "token_endpoint_auth_method",
    "token_endpoint_auth_signing_alg",
    "jwks",
    "jwks_uri",
    *constants.TLS_CLIENT_AUTH_NAME_FIELDS,
)
TOKEN_FIELDS = (
    "id_token_signed_response_alg",
    "tls_client_certificate_bound_access_tokens",
    "dpop_bound_access_tokens",
)


METADATA_FIELDS = (
    "contacts",
    "client_uri",
    "logo_uri",
    "policy_uri",
    "tos_uri",
    "request_object_signing_alg",
    "software_id",
    "software_version",
)
REGISTRATION_FIELDS = (
    "registration_source",
    "cimd_expires_at",
    "software_statement",
    "registration_access_token",
)


class CibaApplicationAdmin(ApplicationAdmin):
    """DOT's application admin with the CIBA registration metadata in its own fieldset.

    Validation lives in the model's ``clean()``, which keys each error by field, so the
    form shows every problem next to the field to fix.
    """

    form = CibaApplicationForm
    list_display = ApplicationAdmin.list_display + (
        "backchannel_token_delivery_mode",
        "grant_types_listed",
        "approval_level",
        "subject_type",
        "reported_requests",
        "blocks",
    )
    #: A new client starts as one CIBA can use: confidential, with ID tokens signed by the server's key.
    new_client_defaults = {"client_type": "confidential", "algorithm": "RS256"}
    list_filter = ApplicationAdmin.list_filter + (
        "backchannel_token_delivery_mode",
        "approval_level",
        "subject_type",
    )
    radio_fields = {**ApplicationAdmin.radio_fields, "backchannel_token_delivery_mode": admin.HORIZONTAL}
    search_fields = ApplicationAdmin.search_fields + ("client_id",)
    # A URL typed without a scheme is an https URL: the endpoints must be https anyway. An
    # empty JWKS is an empty box, not the JSON text "null".
    formfield_overrides = {
        models.URLField: {"assume_scheme": "https"},
        models.JSONField: {"form_class": BlankJSONField},
    }

    def get_deleted_objects(self, objs: Any, request: Any) -> Any:
        """A client's requests and callbacks end with it (``ciba.services.end_client``): their
        read-only admins must not make the client itself undeletable."""
        deleted, count, perms, protected = super().get_deleted_objects(objs, request)
        own = {AuthenticationRequest._meta.verbose_name, CallbackDelivery._meta.verbose_name}
        return deleted, count, {p for p in perms if p not in own}, protected

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
                    "grant_types",
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
                    "clients that do not use CIBA. The approval level is how strongly the user must "
                    "authenticate to approve this client's requests (a passkey for payments, say)."
                ),
            },
        ),
        (
            _("Client authentication and keys"),
            {
                "fields": CLIENT_AUTH_FIELDS,
                "description": _(
                    "How the client proves who it is. A tls_client_auth client registers exactly one "
                    "certificate name (subject DN or one subjectAltName); self_signed_tls_client_auth and "
                    "private_key_jwt clients register their keys (jwks or jwks_uri)."
                ),
            },
        ),
        (
            _("Tokens"),
            {
                "fields": TOKEN_FIELDS,
                "description": _(
                    "How ID tokens are signed, and what access tokens are bound to (RFC 8705, RFC 9449)."
                ),
            },
        ),
        (
            _("Subject identifiers"),
            {
                "fields": ("subject_type", "sector_identifier_uri"),
                "description": _(
                    "Which sub this client sees for a user (OIDC Core 8): the same as every client "
                    "(public) or its own (pairwise, per sector: the host of the sector identifier URI, "
                    "else of the client's URLs). Empty: the server's default. The sector identifier "
                    "document is fetched and checked on save."
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
        (
            _("Client metadata"),
            {
                "fields": METADATA_FIELDS,
                "description": _(
                    "What the client says about itself (RFC 7591 §2): shown to people, not used to decide "
                    "anything."
                ),
                "classes": ("collapse",),
            },
        ),
        (
            _("Registration"),
            {
                "fields": REGISTRATION_FIELDS,
                "description": _(
                    "How the client was registered. A dynamically registered client (RFC 7591) manages "
                    "itself with its registration access token (RFC 7592), which is never stored."
                ),
            },
        ),
    )
    readonly_fields = (*ApplicationAdmin.readonly_fields, "software_statement", "registration_access_token")

    def get_queryset(self, request: HttpRequest) -> Any:
        """With each client's reported requests and blocks counted, one subquery each per row
        of the page (a join of both tables would multiply them)."""
        reported = (
            AuthenticationRequest.objects.filter(client=OuterRef("pk"), reported_at__isnull=False)
            .order_by()
            .values("client")
            .annotate(n=Count("pk"))
            .values("n")
        )
        blocks = (
            ClientBlock.objects.filter(client=OuterRef("pk"))
            .order_by()
            .values("client")
            .annotate(n=Count("pk"))
        ).values("n")
        return (
            super()
            .get_queryset(request)
            .annotate(
                _reported=Subquery(reported, output_field=IntegerField()),
                _blocks=Subquery(blocks, output_field=IntegerField()),
            )
        )

    @admin.display(description=_("reported requests"), ordering="_reported")
    def reported_requests(self, obj: Any) -> Any:
        """Requests users said they did not ask for, linked to the request list filtered on them."""
        count = getattr(obj, "_reported", None) or 0
        if not count:
            return 0
        url = reverse("admin:ciba_authenticationrequest_changelist")
        return format_html('<a href="{}?client__id__exact={}&amp;reported=yes">{}</a>', url, obj.pk, count)

    @admin.display(description=_("blocked by users"), ordering="_blocks")
    def blocks(self, obj: Any) -> Any:
        count = getattr(obj, "_blocks", None) or 0
        if not count:
            return 0
        url = reverse("admin:ciba_clientblock_changelist")
        return format_html('<a href="{}?client__id__exact={}">{}</a>', url, obj.pk, count)

    @admin.display(description=_("grant types"))
    def grant_types_listed(self, obj: Any) -> str:
        return " ".join(obj.registered_grant_types)

    @admin.display(description=_("registration access token"))
    def registration_access_token(self, obj: Any) -> str:
        """Whether the client holds one; never its hash (it would only invite misuse)."""
        if obj is None or not getattr(obj, "registration_access_token_hash", ""):
            return _("None")
        return _("Issued (shown to the client once; only a hash is stored)")

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        defaults = dict(self.new_client_defaults)
        if profile.fapi():
            # The model's default, client_secret_basic, is not offered under FAPI-CIBA.
            defaults["token_endpoint_auth_method"] = constants.AUTH_PRIVATE_KEY_JWT
        return {**defaults, **super().get_changeform_initial_data(request)}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """Under FAPI-CIBA, the CIBA fieldset says so first: its rules apply to every field below."""
        fieldsets = super().get_fieldsets(request, obj)
        if not profile.fapi():
            return fieldsets
        notice = _(
            'This server runs the FAPI-CIBA profile (CIBA["PROFILE"]): only what it allows is offered, '
            "and each field says its rule."
        )
        return [
            (name, {**options, "description": f"{notice} {options.get('description', '')}".strip()})
            if options.get("fields") == CIBA_FIELDS
            else (name, options)
            for name, options in fieldsets
        ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        """A stored value that is no longer offered stays selectable, marked, so that the form
        shows what is stored and saving it names the rule it breaks (instead of silently
        selecting another value)."""
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            return form
        stored = obj.grant_types if isinstance(obj.grant_types, list) else []
        offered = form.base_fields["grant_types"].choices if "grant_types" in form.base_fields else []
        unknown = [name for name in stored if isinstance(name, str) and name not in dict(offered)]
        if unknown:
            field = form.base_fields["grant_types"]
            field.choices = [
                *offered,
                *((name, f"{name} ({_('not offered by this server')})") for name in unknown),
            ]
        for name in self.allowed_choices(request):
            field = form.base_fields.get(name)
            value = getattr(obj, name, "")
            if field is None or not value or value in {choice for choice, _label in field.choices}:
                continue
            reason = _("not allowed by FAPI-CIBA") if profile.fapi() else _("not offered by this server")
            field.choices = [*field.choices, (value, f"{value} ({reason})")]
        return form

    def allowed_choices(self, request: HttpRequest) -> dict[str, list[str]]:
        """The values offered per choice field (``ciba.registration_rules.allowed_choices``)."""
        return registration_rules.allowed_choices()

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Offer only the delivery modes this server supports (``CIBA["DELIVERY_MODES"]``, without
        push under FAPI-CIBA) and, under FAPI-CIBA, only the methods and algorithms it allows."""
        allowed = self.allowed_choices(request).get(db_field.name)
        if db_field.name == "backchannel_token_delivery_mode":
            kwargs["choices"] = [("", _("None (not a CIBA client)"))] + [
                (value, label) for value, label in db_field.choices if value in allowed
            ]
        elif allowed is not None:
            kwargs["choices"] = [
                (value, label)
                for value, label in db_field.get_choices(include_blank=db_field.blank)
                if value == "" or value in allowed
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Under FAPI-CIBA, each field the profile constrains states its rule after its help text."""
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        rule = registration_rules.profile_hints().get(db_field.name)
        if formfield is not None and rule:
            formfield.help_text = f"{formfield.help_text} {rule}".strip()
        return formfield


def _user_search_fields() -> tuple[str, ...]:
    user_model = get_user_model()
    fields = (f"user__{user_model.USERNAME_FIELD}",)
    email = user_model.get_email_field_name()
    if email != user_model.USERNAME_FIELD and any(f.name == email for f in user_model._meta.get_fields()):
        fields += (f"user__{email}",)
    return fields


def may_change(model_admin: admin.ModelAdmin, request: HttpRequest) -> bool:
    """Whether the staff user holds the model's *change* permission. Rows the admin shows
    read-only still have actions that change state (re-send, retry): those need the change
    permission itself, so that a view-only account can look and never act."""
    opts = model_admin.opts
    return bool(request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}"))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only their own workflow may write (the protocol, ``manage.py ciba_keys``): staff look."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApprovalEvidenceInline(admin.StackedInline):
    """What proved the approval (``ApprovalEvidence``), read-only: the method and level, the
    passkey and the assertion's flags, and the signed assertion itself, so an operator
    answering a dispute sees which authenticator signed which transaction digest."""

    model = ApprovalEvidence
    can_delete = False
    extra = 0
    max_num = 0
    verbose_name_plural = _("approval evidence")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "method",
                    "level",
                    "verified_at",
                    "passkey_link",
                    "flags",
                    "transaction_digest",
                    "origin",
                    "rp_id",
                    "sign_count",
                )
            },
        ),
        (
            _("Signed assertion (re-verifiable with the passkey's public key)"),
            {
                "fields": (
                    "credential_id",
                    "user_handle",
                    "challenge",
                    "client_data",
                    "authenticator_data",
                    "signature",
                ),
                "classes": ("collapse",),
            },
        ),
    )
    # Everything shown is read-only evidence: the fields are those of the fieldsets, once.
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("passkey"))
    def passkey_link(self, obj: ApprovalEvidence) -> str:
        """The passkey, linked; a removed one is named by its credential ID."""
        if obj.passkey_id is None:
            return (
                _("removed since (credential %(id)s)") % {"id": obj.credential_id[:16]}
                if obj.credential_id
                else "-"
            )
        url = reverse("admin:ciba_passkey_change", args=[obj.passkey_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.passkey))

    @admin.display(description=_("flags"))
    def flags(self, obj: ApprovalEvidence) -> str:
        """The authenticator's flags in words: what the ``amr`` was derived from."""
        if obj.method != "passkey":
            return "-"
        words = [
            _("user present") if obj.user_present else _("user NOT present"),
            _("user verified") if obj.user_verified else _("user NOT verified"),
            _("synced passkey (backup eligible)") if obj.backup_eligible else _("device-bound"),
        ]
        if obj.backed_up:
            words.append(_("backed up"))
        return ", ".join(str(word) for word in words)

    @admin.display(description=_("client data"))
    def client_data(self, obj: ApprovalEvidence) -> str:
        """clientDataJSON, decoded (type, challenge, origin) when it reads as JSON."""
        return _json_block(_client_data(obj.client_data_json)) if obj.client_data_json else "-"


def _client_data(stored: str) -> Any:
    """clientDataJSON as stored (the JSON, or its base64url as WebAuthn's JSON forms carry it)."""
    for decode in (lambda v: v, lambda v: base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)).decode()):
        try:
            return json.loads(decode(stored))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
    return stored


class ReportedFilter(admin.SimpleListFilter):
    """Requests the user said they did not ask for ("I did not ask for this")."""

    title = _("reported by the user")
    parameter_name = "reported"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return (("yes", _("Reported")), ("no", _("Not reported")))

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "yes":
            return queryset.filter(reported_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(reported_at__isnull=True)
        return queryset


@admin.register(AuthenticationRequest)
class AuthenticationRequestAdmin(ReadOnlyAdmin):
    """Read-only: requests change state only through the protocol and consent API.

    ``auth_req_id`` and ``client_notification_token`` are credentials, so they are never
    shown whole nor searchable (a search would put them in URLs and access logs).
    """

    list_display = (
        "masked_auth_req_id",
        "client",
        "user",
        "state",
        "cancel_reason",
        "reported_at",
        "device_notification_status",
        "created_at",
        "expires_at",
    )
    list_filter = (
        "state",
        ReportedFilter,
        "cancel_reason",
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
        "auth_time",
        "binding_message",
        "requested_details",
        "details_as_displayed",
        "approved_details",
        "displayed_details_hash",
        "claims_requested",
        "context_of_request",
        "resource",
        "masked_client_notification_token",
        "requested_expiry",
        "interval",
        "created_at",
        "expires_at",
        "decided_at",
        "decided_by",
        "cancel_reason",
        "reported_at",
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
    inlines = (ApprovalEvidenceInline,)

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return may_change(self, request)

    @admin.action(
        description=_("Re-send the device notification (pending requests only)"),
        permissions=("resend",),
    )
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

    # --- what every party saw and agreed to (RFC 9396) ---------------------------------------

    @admin.display(description=_("requested authorization details"))
    def requested_details(self, obj: AuthenticationRequest) -> str:
        return _json_block(obj.authorization_details or None)

    @admin.display(description=_("authorization details as the device shows them"))
    def details_as_displayed(self, obj: AuthenticationRequest) -> str:
        """The rendering the user's device shows (its hash is ``displayed_details_hash``)."""
        if not obj.authorization_details:
            return "-"
        try:
            rendered = rar.rendering(obj.authorization_details)
        except (CibaError, KeyError, TypeError, ValueError) as exc:
            # A stored object the site's renderer no longer reads (its type changed since):
            # the operator is told why, the stored JSON above still shows what was asked.
            return format_html("<em>{}</em>", _("Cannot be rendered now: %(error)s") % {"error": exc})
        return format_html_join(
            "",
            '<div><strong>{}</strong><pre style="white-space: pre-wrap">{}</pre></div>',
            ((item.get("type", ""), item.get("text", "")) for item in rendered),
        )

    @admin.display(description=_("approved authorization details"))
    def approved_details(self, obj: AuthenticationRequest) -> str:
        if obj.approved_authorization_details is None:
            return _("Not decided") if obj.authorization_details and obj.decided_at is None else "-"
        return _json_block(obj.approved_authorization_details)

    @admin.display(description=_("claims request"))
    def claims_requested(self, obj: AuthenticationRequest) -> str:
        return _json_block(obj.claims)

    @admin.display(description=_("request context"))
    def context_of_request(self, obj: AuthenticationRequest) -> str:
        return _json_block(obj.request_context)


def _json_block(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)


@admin.register(ClientBlock)
class ClientBlockAdmin(admin.ModelAdmin):
    """A user's "do not let this client ask me again". Users make and lift blocks themselves
    (the device page, the consent API); staff may look, lift one (delete) or add one for a
    user who asked support to, never edit one in place."""

    list_display = ("user", "client", "created_at", "reported_request")
    list_select_related = ("user", "client", "reported_request")
    list_filter = ("created_at",)
    search_fields = ("client__name", "client__client_id") + _user_search_fields()
    raw_id_fields = ("user", "client", "reported_request")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = ("user", "client", "reported_request", "created_at")
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields if obj is not None else self.readonly_fields


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


class ClonedFilter(admin.SimpleListFilter):
    """Passkeys whose sign count went backwards (refused since): the ones to follow up."""

    title = _("suspected clone")
    parameter_name = "cloned"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "yes":
            return queryset.filter(cloned_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(cloned_at__isnull=True)
        return queryset


@admin.register(Passkey)
class PasskeyAdmin(admin.ModelAdmin):
    """Users' passkeys: staff may rename or remove one (a lost phone, a suspected clone), never
    add one or touch its key material: only the user's own WebAuthn enrollment creates one.
    Removing one fires ``passkey_removed`` as the user's own removal does."""

    list_display = ("user", "display_name", "device_bound", "created_at", "last_used_at", "cloned")
    list_filter = (ClonedFilter, "backup_eligible")
    list_select_related = ("user",)
    search_fields = _user_search_fields() + ("name",)
    ordering = ("user", "created_at")
    fields = (
        "user",
        "name",
        "device_bound",
        "backup_eligible",
        "backed_up",
        "created_at",
        "last_used_at",
        "cloned_at",
        "sign_count",
        "aaguid",
        "transports",
        "credential_id",
        "user_handle",
        "public_key_base64url",
    )
    readonly_fields = tuple(name for name in fields if name != "name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=_("name"), ordering="name")
    def display_name(self, obj: Passkey) -> str:
        return obj.name or _("(unnamed) %(id)s") % {"id": obj.credential_id[:16]}

    @admin.display(description=_("device-bound"), boolean=True)
    def device_bound(self, obj: Passkey) -> bool:
        return obj.device_bound

    @admin.display(description=_("suspected clone"), boolean=True, ordering="cloned_at")
    def cloned(self, obj: Passkey) -> bool:
        return obj.cloned_at is not None

    @admin.display(description=_("public key (COSE, base64url)"))
    def public_key_base64url(self, obj: Passkey) -> str:
        key = bytes(obj.public_key or b"")
        return base64.urlsafe_b64encode(key).rstrip(b"=").decode() if key else "-"

    def delete_model(self, request: HttpRequest, obj: Passkey) -> None:
        user = obj.user
        super().delete_model(request, obj)
        passkey_removed.send(sender=Passkey, passkey=obj, user=user)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        removed = [(passkey, passkey.user) for passkey in queryset.select_related("user")]
        super().delete_queryset(request, queryset)
        for passkey, user in removed:
            passkey_removed.send(sender=Passkey, passkey=passkey, user=user)


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

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return may_change(self, request)

    @admin.action(description=_("Retry the selected failed callbacks now"), permissions=("retry",))
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
    """User codes (CIBA §7.1.2): staff may set one for a user, unlock it or remove it.

    Unlocking forgets every client's wrong codes for the user (``UserCodeFailures``); it
    changes state, so it needs the change permission.
    """

    form = UserCodeForm
    list_display = ("user", "updated_at")
    search_fields = _user_search_fields()
    list_select_related = ("user",)
    readonly_fields = ("updated_at",)
    actions = ("unlock",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (("user",) if obj is not None else ()) + self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The service hashes the code and resets failures; the form's instance is not saved itself.
        user = obj.user if change else form.cleaned_data["user"]
        saved = user_codes.set_user_code(user, form.cleaned_data["new_code"])  # the form checked the code
        obj.pk, obj.code = saved.pk, saved.code

    @admin.action(description=_("Unlock the selected user codes"), permissions=("change",))
    def unlock(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset.select_related("user"):
            user_codes.unlock(row.user)
        self.message_user(request, _("%(count)d user code(s) unlocked.") % {"count": queryset.count()})


@admin.register(UserCodeFailures)
class UserCodeFailuresAdmin(admin.ModelAdmin):
    """Which client sent how many wrong user codes, for which user (or for all users together),
    in the current window. Written only by the code check; deleting a row lifts that budget's
    lock (the delete permission)."""

    list_display = ("client", "user", "failures", "window_ends")
    list_select_related = ("client", "user")
    search_fields = ("client__name", "client__client_id") + _user_search_fields()
    fields = list_display
    readonly_fields = fields
    ordering = ("-window_ends",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


@admin.register(ResourceServer)
class ResourceServerAdmin(admin.ModelAdmin):
    """The applications allowed to introspect tokens (RFC 7662): the site's resource servers.

    Adding one lets it call the introspection endpoint with its client credentials (or a token
    with the ``introspection`` scope); removing one makes the endpoint refuse it at once. Only
    confidential clients may be designated.
    """

    list_display = ("application", "created_at")
    list_select_related = ("application",)
    search_fields = ("application__name", "application__client_id")
    raw_id_fields = ("application",)


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    """ID-token signing keys, to look at only: ``manage.py ciba_keys`` adds, rotates and prunes
    them (the published set must change in order), and the private key is never shown."""

    list_display = ("kid", "kty", "state", "created_at", "activated_at", "retired_at")
    list_filter = ("kty", "state")
    search_fields = ("kid",)
    fields = list_display
    readonly_fields = fields


class InitialAccessTokenForm(forms.ModelForm):
    """A new initial access token (RFC 7591 §3): who it is for, how often and how long it may be
    used, and what it may register. The token itself is made by
    ``ciba.client_registration.initial_access_tokens.issue`` and shown once, after saving."""

    uses = forms.IntegerField(
        label=_("uses"),
        min_value=1,
        initial=1,
        required=False,
        help_text=_("How many clients it may register. Empty: any number until it expires."),
    )
    expires_in = forms.IntegerField(
        label=_("expires in (seconds)"),
        min_value=1,
        initial=86400,
        required=False,
        help_text=_("Empty: never (a token that never expires should be revoked when no longer needed)."),
    )

    class Meta:
        model = InitialAccessToken
        fields = ("name", "allowed_metadata")
        field_classes = {"allowed_metadata": forms.JSONField}

    def clean_allowed_metadata(self) -> dict[str, Any]:
        try:
            return initial_access_tokens.normalised_allowed_metadata(
                self.cleaned_data.get("allowed_metadata") or {}
            )
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(InitialAccessToken)
class InitialAccessTokenAdmin(admin.ModelAdmin):
    """Initial access tokens: issue one (shown once, in the message after saving), see which are
    usable, revoke them. Only a hash of each token is stored, and it is never shown: it is no
    secret, but a hash on the page would look like one."""

    list_display = ("name", "state", "uses_left", "expires", "created", "created_by", "revoked")
    list_filter = ("revoked", "expires")
    search_fields = ("name",)
    list_select_related = ("created_by",)
    ordering = ("-created",)
    actions = ("revoke",)
    readonly_fields = (
        "state",
        "uses_left",
        "expires",
        "revoked",
        "created",
        "created_by",
        "allowed_metadata",
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = InitialAccessTokenForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("name", "uses", "expires_in", "allowed_metadata")
        return ("name", *self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # the name only
            return
        token, row = initial_access_tokens.issue(
            form.cleaned_data["name"],
            uses=form.cleaned_data.get("uses"),
            expires_in=form.cleaned_data.get("expires_in"),
            allowed_metadata=form.cleaned_data.get("allowed_metadata") or {},
            created_by=request.user,
        )
        for field in row._meta.concrete_fields:
            setattr(obj, field.attname, getattr(row, field.attname))
        obj._state = row._state
        self.message_user(
            request,
            _(
                "The initial access token for %(name)s is %(token)s - copy it now: it is shown only "
                "this once (only its hash is stored). The developer sends it as "
                '"Authorization: Bearer <token>" to the registration endpoint.'
            )
            % {"name": row.name, "token": token},
            level=messages.WARNING,
        )

    @admin.display(description=_("state"))
    def state(self, obj: InitialAccessToken) -> str:
        return initial_access_tokens.state(obj)

    @admin.action(description=_("Revoke the selected initial access tokens"), permissions=("change",))
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        revoked = [
            initial_access_tokens.revoke(pk)
            for pk in queryset.filter(revoked__isnull=True).values_list("pk", flat=True)
        ]
        self.message_user(
            request,
            _("%(count)d initial access token(s) revoked.") % {"count": len([r for r in revoked if r])},
        )
