"""A user's refusal to be asked by one client again ("I did not ask for this").

The request policy consults it before anyone is notified: a blocked client's requests for
this user are refused with ``access_denied`` as any other policy refusal, so the client learns
nothing it could not learn from a denial.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class ClientBlock(models.Model):
    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_client_blocks",
        verbose_name=_("user"),
    )
    client = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_blocks",
        verbose_name=_("client"),
    )
    #: the request the user reported when blocking, if any
    reported_request = models.ForeignKey(
        "ciba.AuthenticationRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("reported request"),
    )
    created_at = models.DateTimeField(_("blocked at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("blocked client")
        verbose_name_plural = _("blocked clients")
        constraints = [
            models.UniqueConstraint(fields=["user", "client"], name="ciba_client_block_user_client")
        ]

    def __str__(self) -> str:
        return f"{self.user} blocked {self.client}"
