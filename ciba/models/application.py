"""The concrete, swappable CIBA application model for sites without their own."""

from __future__ import annotations

from oauth2_provider.models import AbstractApplication, ApplicationManager

from .mixins import CibaClientMixin


class Application(CibaClientMixin, AbstractApplication):
    """DOT's Application plus the CIBA registration metadata.

    Enable it with ``OAUTH2_PROVIDER_APPLICATION_MODEL = "ciba.Application"`` *before* the
    first ``migrate`` (a swapped model cannot be adopted by an existing DOT deployment
    without a data migration; see docs/integration.md). It declares DOT's ``swappable``
    key, so whichever application model the setting names is the only one given a table.
    """

    objects = ApplicationManager()

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        verbose_name = "application"

    def natural_key(self) -> tuple[str]:
        return (self.client_id,)
