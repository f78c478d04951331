"""Which OAuth clients may introspect tokens (RFC 7662): the site's own resource servers."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class ResourceServer(models.Model):
    """An application the site designates as a resource server.

    Introspection (RFC 7662) tells its caller who a token belongs to (``username``) and what
    it may do (``scope``): RFC 7662 §4 asks that callers be "specifically authorized". Only
    applications listed here may call the introspection endpoint; any other client, such as
    one a user registered through DOT's self-service pages, is refused (403). Like
    ``ConsentClient``, the designation is a row staff add in the admin, never a flag a client
    sets on itself.
    """

    id = models.BigAutoField(primary_key=True)
    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_resource_server",
        verbose_name=_("application"),
    )
    created_at = models.DateTimeField(_("designated at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("CIBA resource server")
        verbose_name_plural = _("CIBA resource servers")

    def __str__(self) -> str:
        return str(self.application)

    def clean(self) -> None:
        """A resource server authenticates to introspect, so it must be able to keep a
        credential: a public client cannot."""
        application = getattr(self, "application", None)
        if application is not None and application.client_type != "confidential":
            raise ValidationError(
                {
                    "application": _(
                        "A resource server must be a confidential client: it authenticates to introspect."
                    )
                }
            )
