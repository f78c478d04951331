"""Initial access tokens (RFC 7591 §3): who may register a client dynamically."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class InitialAccessToken(models.Model):
    """A bearer token an operator hands to a developer so that they may register clients.

    Registration is closed by default (``docs/registration.md``); each token opens it for one
    party, for a number of uses and a time, and may narrow the metadata that party may
    register (``allowed_metadata``: a metadata name mapped to the values it may take, e.g.
    ``{"backchannel_token_delivery_mode": ["poll"]}``). Only a SHA-256 of the token is stored:
    the token is 256 random bits, so a keyed or slow hash would add nothing.
    """

    token_hash = models.CharField(max_length=64, unique=True, editable=False, verbose_name=_("token hash"))
    name = models.CharField(
        max_length=255, verbose_name=_("name"), help_text=_("Who the token was issued to, and why.")
    )
    allowed_metadata = models.JSONField(
        default=dict,
        blank=True,
        verbose_name=_("allowed metadata"),
        help_text=_(
            'Metadata names mapped to the values a registration may use, e.g. {"grant_types": '
            '["urn:openid:params:grant-type:ciba"]}. Empty: anything the server accepts.'
        ),
    )
    uses_left = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("uses left"), help_text=_("Empty: any number until it expires.")
    )
    expires = models.DateTimeField(null=True, blank=True, verbose_name=_("expires"))
    revoked = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked"))
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name = _("initial access token")
        verbose_name_plural = _("initial access tokens")

    def __str__(self) -> str:
        return self.name
