"""A site's own OAuth application model with the CIBA mixin, as docs/integration.md shows."""

from django.db import models
from oauth2_provider.models import AbstractApplication

from ciba.models import CibaClientMixin


class Application(CibaClientMixin, AbstractApplication):
    department = models.CharField(max_length=50, blank=True)

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
