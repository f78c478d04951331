"""When and how the user authenticated for a refresh token (OIDC Core §12.2).

An ID token minted on refresh must carry the ``auth_time`` of the original authentication,
not the time of the refresh, and keeps its ``acr`` and ``amr``. DOT's token models are swappable
and record none of this, and the CIBA request that holds it is deleted once finished
(``expire_ciba_requests --delete-finished-older-than``) while its refresh tokens live on, so
the authentication lives beside each refresh token, one row per token, copied to the token
that replaces it on rotation and deleted with it. A refresh token without a row (one not
issued by the CIBA grant, or issued before this model existed) keeps DOT's ``auth_time``.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class OriginalAuthentication(models.Model):
    """The authentication a refresh token's ID tokens speak of: the user's approval of the
    CIBA request (``AuthenticationRequest.decided_at``), and the ``acr`` and RFC 8176 ``amr``
    it achieved."""

    id = models.BigAutoField(primary_key=True)
    refresh_token = models.OneToOneField(
        oauth2_settings.REFRESH_TOKEN_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_authentication",
        verbose_name=_("refresh token"),
    )
    auth_time = models.DateTimeField(_("authentication time"))
    acr = models.CharField(_("achieved ACR"), max_length=255, blank=True)
    amr = models.CharField(
        _("authentication methods"),
        max_length=255,
        blank=True,
        help_text=_("RFC 8176 values, space-separated."),
    )
    authorization_details = models.JSONField(
        _("approved authorization details"),
        null=True,
        blank=True,
        help_text=_("RFC 9396: what the user approved; tokens minted on refresh carry the same."),
    )
    userinfo_claims = models.JSONField(
        _("claims requested at userinfo"),
        null=True,
        blank=True,
        help_text=_("OIDC Core §5.5: what the access tokens minted on refresh release at userinfo."),
    )

    class Meta:
        verbose_name = _("original authentication")
        verbose_name_plural = _("original authentications")

    def __str__(self) -> str:
        return f"authenticated at {self.auth_time.isoformat()}"
