"""Passkeys (WebAuthn credentials) users enrolled on their authentication device, and the
single-use challenges of the ceremonies that enroll them and approve with them.

The credential's public key and sign count are what approval verifies against; its flags
(backup eligibility) say whether the key can leave the authenticator, which the ``amr`` and
the ``passkey_device_bound`` level read (ciba.assurance). A passkey whose sign count went
backwards is marked ``cloned_at`` and never verifies again.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Passkey(models.Model):
    """One user's WebAuthn credential, enrolled with user verification."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_passkeys",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=64, blank=True)
    #: base64url (unpadded) of the credential ID, as WebAuthn's JSON forms carry it
    credential_id = models.CharField(_("credential ID"), max_length=1400, unique=True)
    public_key = models.BinaryField(_("public key (COSE)"))
    #: base64url of the WebAuthn user.id the credential was created for (opaque, no personal data)
    user_handle = models.CharField(_("user handle"), max_length=128)
    sign_count = models.PositiveBigIntegerField(_("sign count"), default=0)
    aaguid = models.CharField(_("authenticator model (AAGUID)"), max_length=36, blank=True)
    transports = models.JSONField(_("transports"), default=list, blank=True)
    backup_eligible = models.BooleanField(
        _("backup eligible"), default=False, help_text=_("The key may be synced off the authenticator.")
    )
    backed_up = models.BooleanField(_("backed up"), default=False)
    created_at = models.DateTimeField(_("enrolled at"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    cloned_at = models.DateTimeField(
        _("suspected clone at"),
        null=True,
        blank=True,
        help_text=_("Its sign count went backwards: it is refused from then on."),
    )

    class Meta:
        verbose_name = _("passkey")
        verbose_name_plural = _("passkeys")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.name or self.credential_id[:16]

    @property
    def device_bound(self) -> bool:
        return not self.backup_eligible


class WebAuthnChallenge(models.Model):
    """A challenge handed to a browser for one ceremony; consumed (deleted) by the first
    response that uses it, so an assertion or attestation is never accepted twice."""

    class Purpose(models.TextChoices):
        REGISTER = "register", _("enroll a passkey")
        APPROVE = "approve", _("approve a request")
        SIGN_IN = "sign_in", _("sign in")

    id = models.BigAutoField(primary_key=True)
    #: base64url (unpadded) of the challenge bytes, as clientDataJSON carries it
    challenge = models.CharField(_("challenge"), max_length=128, unique=True)
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    auth_request = models.ForeignKey(
        "ciba.AuthenticationRequest", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    #: hex SHA-256 of the transaction an approval challenge is bound to (ciba.passkeys.linking)
    transaction_digest = models.CharField(max_length=64, blank=True)
    rp_id = models.CharField(max_length=253)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("WebAuthn challenge")
        verbose_name_plural = _("WebAuthn challenges")
