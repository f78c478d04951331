"""What an access token was granted beyond its scope (RFC 9396 authorization details).

DOT's access token records a scope string only. A resource server that introspects a token, or
a site that looks a token up, must see the authorization details the user approved for it
(RFC 9396 §9), so they live beside each access token, one row per token, deleted with it.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class AccessTokenGrant(models.Model):
    """The approved ``authorization_details`` of one access token."""

    id = models.BigAutoField(primary_key=True)
    access_token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_grant",
        verbose_name=_("access token"),
    )
    authorization_details = models.JSONField(_("approved authorization details"), default=list, blank=True)
    userinfo_claims = models.JSONField(
        _("claims requested at userinfo"),
        null=True,
        blank=True,
        help_text=_(
            "OIDC Core §5.5: the userinfo member of the request's claims request, limited at issue "
            "to the claims this token may release."
        ),
    )

    class Meta:
        verbose_name = _("access token grant")
        verbose_name_plural = _("access token grants")

    def __str__(self) -> str:
        return f"grant of access token {self.access_token_id}"
