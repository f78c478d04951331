"""What proved the user's approval of a CIBA request, kept with the decision.

For a passkey approval this is the verified WebAuthn assertion itself (authenticator data,
client data, signature, the credential and its flags), so anyone holding the credential's
public key can re-verify later that this user's authenticator signed this transaction
(ciba.passkeys.linking says how the challenge is derived). For a password re-entry it records
the method and time only. A plain tap in a signed-in session stores no evidence row.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApprovalEvidence(models.Model):
    auth_request = models.OneToOneField(
        "ciba.AuthenticationRequest",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="evidence",
        verbose_name=_("request"),
    )
    level = models.CharField(_("level reached"), max_length=32)
    method = models.CharField(_("method"), max_length=16)
    verified_at = models.DateTimeField(_("verified at"), default=timezone.now)
    passkey = models.ForeignKey(
        "ciba.Passkey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("passkey"),
    )
    credential_id = models.CharField(_("credential ID"), max_length=1400, blank=True)
    #: base64url (unpadded) of the challenge, authenticator data and signature; clientDataJSON as sent
    challenge = models.CharField(_("challenge"), max_length=128, blank=True)
    transaction_digest = models.CharField(_("transaction digest"), max_length=64, blank=True)
    authenticator_data = models.TextField(_("authenticator data"), blank=True)
    client_data_json = models.TextField(_("client data"), blank=True)
    signature = models.TextField(_("signature"), blank=True)
    user_handle = models.CharField(_("user handle"), max_length=128, blank=True)
    origin = models.CharField(_("origin"), max_length=2000, blank=True)
    rp_id = models.CharField(_("RP ID"), max_length=253, blank=True)
    sign_count = models.PositiveBigIntegerField(_("sign count"), null=True, blank=True)
    user_present = models.BooleanField(_("user present"), default=False)
    user_verified = models.BooleanField(_("user verified"), default=False)
    backup_eligible = models.BooleanField(_("backup eligible"), default=False)
    backed_up = models.BooleanField(_("backed up"), default=False)

    class Meta:
        verbose_name = _("approval evidence")
        verbose_name_plural = _("approval evidence")

    def __str__(self) -> str:
        return f"{self.method} at {self.verified_at.isoformat()}"
