"""Pairwise subject identifiers (OIDC Core §8.1): the ``sub`` one sector sees for one user.

A pairwise ``sub`` is derived, not reversible, yet an ``id_token_hint`` or ``login_hint_token``
names the user by it: the identifiers handed out are kept, one row per (sector, user), so a
hint's ``sub`` leads back to its user without trying every account.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SubjectIdentifier(models.Model):
    id = models.BigAutoField(primary_key=True)
    #: the sector: the host of the client's sector_identifier_uri, else of its redirect or
    #: notification endpoint (ciba.subjects)
    sector = models.CharField(_("sector"), max_length=253)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_subject_identifiers",
        verbose_name=_("user"),
    )
    sub = models.CharField(_("subject identifier"), max_length=255)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("pairwise subject identifier")
        verbose_name_plural = _("pairwise subject identifiers")
        constraints = [
            models.UniqueConstraint(fields=["sector", "user"], name="ciba_subject_sector_user"),
            models.UniqueConstraint(fields=["sector", "sub"], name="ciba_subject_sector_sub"),
        ]

    def __str__(self) -> str:
        return f"{self.sub} at {self.sector}"
