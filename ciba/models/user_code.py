"""A user's CIBA user code (CIBA §7.1.2): a secret the user gives the client, kept hashed."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserCode(models.Model):
    """One user's code, hashed with Django's password hasher (never stored or shown in clear).

    Failures are counted per user; after ``USER_CODE_MAX_FAILURES`` in a row the code is locked
    for ``USER_CODE_LOCKOUT_SECONDS``, during which no code is accepted, so a client that knows
    the user's login hint cannot guess the code.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_user_code",
        verbose_name=_("user"),
    )
    code = models.CharField(_("hashed user code"), max_length=256)
    failed_attempts = models.PositiveSmallIntegerField(_("failed attempts in a row"), default=0)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    updated_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        verbose_name = _("CIBA user code")
        verbose_name_plural = _("CIBA user codes")

    def __str__(self) -> str:
        return f"User code of {self.user}"
