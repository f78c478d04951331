"""A user's CIBA user code (CIBA §7.1.2), kept hashed, and the clients' budgets of wrong ones."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class UserCode(models.Model):
    """One user's code, hashed with Django's password hasher (never stored or shown in clear).

    Wrong codes are counted per client (``UserCodeFailures``), not here: a count per user let
    any client that knows a login hint lock the user's code for every other client.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_user_code",
        verbose_name=_("user"),
    )
    code = models.CharField(_("hashed user code"), max_length=256)
    updated_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        verbose_name = _("CIBA user code")
        verbose_name_plural = _("CIBA user codes")

    def __str__(self) -> str:
        return f"User code of {self.user}"


class UserCodeFailures(models.Model):
    """Wrong user codes one client sent in the window ending at ``window_ends``: for one user
    (``user`` set; at most ``USER_CODE_MAX_FAILURES``) or for all users together (``user``
    empty; at most ``USER_CODE_MAX_FAILURES_PER_CLIENT``).

    A client over either budget has its codes refused, before any hash, until the window ends;
    no other client is affected. The row of a (client, user) pair is taken before the code is
    hashed (a conditional UPDATE), so concurrent requests cannot buy more hashes than the
    budget; a right code deletes it. Rows whose window has ended are reused or purged.
    Users without a code are counted the same way: their answer and its cost are the same.
    """

    id = models.BigAutoField(primary_key=True)
    client = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("client"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
        help_text=_("Empty: the client's wrong codes for all users together."),
    )
    failures = models.PositiveIntegerField(_("wrong codes"), default=0)
    window_ends = models.DateTimeField(_("counted until"))

    class Meta:
        verbose_name = _("CIBA user code failures")
        verbose_name_plural = _("CIBA user code failures")
        constraints = [
            models.UniqueConstraint(
                fields=["client", "user"],
                condition=Q(user__isnull=False),
                name="ciba_usercodefailures_client_user",
            ),
            models.UniqueConstraint(
                fields=["client"],
                condition=Q(user__isnull=True),
                name="ciba_usercodefailures_client",
            ),
        ]

    def __str__(self) -> str:
        return f"Wrong user codes of {self.client} for {self.user or 'all users'}"
