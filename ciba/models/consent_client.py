"""Which OAuth clients may hold the consent scope: the site's own authentication-device apps."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class ConsentClient(models.Model):
    """An application the site designates as an authentication-device app.

    A token carrying ``CIBA["CONSENT_SCOPE"]`` approves CIBA requests in its user's name, so the
    scope must not be grantable to any app a user happens to authorise: only applications
    listed here obtain it (DOT's authorization and token endpoints refuse it to the others),
    and the consent API refuses consent-scoped tokens of any other application.
    """

    id = models.BigAutoField(primary_key=True)
    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_consent_client",
        verbose_name=_("application"),
    )
    created_at = models.DateTimeField(_("designated at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("CIBA device app")
        verbose_name_plural = _("CIBA device apps")

    def __str__(self) -> str:
        return str(self.application)
