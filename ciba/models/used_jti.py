"""Single-use JWT ids, kept in the database when the cache cannot be trusted to be shared."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class UsedJti(models.Model):
    """One ``jti`` seen (as a hash of its kind, issuer and value), until its JWT expires.

    The primary key makes the insert the atomic test: of two processes that see the same
    ``jti`` at once, exactly one inserts it.
    """

    digest = models.CharField(_("digest"), max_length=64, primary_key=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)

    class Meta:
        verbose_name = _("used JWT id")
        verbose_name_plural = _("used JWT ids")

    def __str__(self) -> str:
        return f"jti …{self.digest[-6:]}"
