"""This server's own ID-token signing keys, shared by every process through the database.

DOT signs with one RSA key from settings; FAPI needs PS256 and ES256, several keys at once
and rotation without a deploy. ``manage.py ciba_keys`` adds, activates and prunes them.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SigningKey(models.Model):
    """One private key, with its life cycle: ``next`` (published, not used yet, so relying
    parties' JWKS caches learn it first), ``active`` (signs new ID tokens; one per key type),
    ``retired`` (published until ID tokens it signed have expired, then pruned)."""

    class State(models.TextChoices):
        NEXT = "next", _("next (published, not signing yet)")
        ACTIVE = "active", _("active (signing)")
        RETIRED = "retired", _("retired (published, not signing)")

    class KeyType(models.TextChoices):
        RSA = "RSA", "RSA"
        EC = "EC", "EC (P-256)"

    id = models.BigAutoField(primary_key=True)
    kid = models.CharField(_("key id"), max_length=64, unique=True)
    kty = models.CharField(_("key type"), max_length=3, choices=KeyType.choices)
    private_pem = models.TextField(_("private key (PEM)"))
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.NEXT)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)

    class Meta:
        verbose_name = _("ID token signing key")
        verbose_name_plural = _("ID token signing keys")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kty"], condition=models.Q(state="active"), name="ciba_signingkey_one_active_per_kty"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kty} {self.kid} ({self.state})"
