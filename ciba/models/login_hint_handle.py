"""The opaque handle inside a login_hint_token this server issued ("show my code").

The token a kiosk scans carries only a random handle, never the username or ``sub``: a QR code
photographed over a shoulder names nobody, and the handle is worthless once used or expired.
Only the handle's SHA-256 is stored, so a database reader cannot mint a scannable code either.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class LoginHintHandle(models.Model):
    #: SHA-256 (hex) of the handle in the token; the primary key makes issuing collision-safe
    digest = models.CharField(_("digest"), max_length=64, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_login_hint_handles",
        verbose_name=_("user"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    #: set by the one request that redeemed it (a conditional UPDATE: one winner across processes)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("login hint code")
        verbose_name_plural = _("login hint codes")
        indexes = [models.Index(fields=["user", "expires_at"], name="ciba_hint_handle_user_exp")]

    def __str__(self) -> str:
        return f"code …{self.digest[-6:]} for {self.user}"
