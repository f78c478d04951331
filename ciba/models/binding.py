"""Which key or certificate a token is bound to (RFC 8705 §3, RFC 9449 §6).

DOT's token models are swappable and carry no confirmation claim, so the binding lives
beside them, one row per bound token, deleted with it. A token without a row is a plain
bearer token.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class TokenBinding(models.Model):
    """The confirmation (``cnf``) of one access or refresh token: exactly one of the two
    token links is set, and exactly one of ``x5t_s256`` (a certificate's SHA-256
    thumbprint) and ``jkt`` (a DPoP key's JWK SHA-256 thumbprint)."""

    id = models.BigAutoField(primary_key=True)
    access_token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="ciba_binding",
        verbose_name=_("access token"),
    )
    refresh_token = models.OneToOneField(
        oauth2_settings.REFRESH_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="ciba_binding",
        verbose_name=_("refresh token"),
    )
    x5t_s256 = models.CharField(_("certificate thumbprint (x5t#S256)"), max_length=64, blank=True)
    jkt = models.CharField(_("DPoP key thumbprint (jkt)"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("token binding")
        verbose_name_plural = _("token bindings")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(access_token__isnull=False, refresh_token__isnull=True)
                | models.Q(access_token__isnull=True, refresh_token__isnull=False),
                name="ciba_tokenbinding_one_token",
            ),
            models.CheckConstraint(
                condition=(models.Q(x5t_s256="") & ~models.Q(jkt=""))
                | (~models.Q(x5t_s256="") & models.Q(jkt="")),
                name="ciba_tokenbinding_one_confirmation",
            ),
        ]

    def __str__(self) -> str:
        return f"x5t#S256 {self.x5t_s256}" if self.x5t_s256 else f"jkt {self.jkt}"

    @property
    def cnf(self) -> dict[str, str]:
        """The RFC 7800 confirmation claim, as introspection shows it."""
        return {"x5t#S256": self.x5t_s256} if self.x5t_s256 else {"jkt": self.jkt}
