from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CibaConfig(AppConfig):
    name = "ciba"
    label = "ciba"
    verbose_name = _("CIBA")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registering the system checks is the only start-up work: everything else is
        # resolved lazily so that importing ciba never touches the database or the network.
        from . import (
            checks,  # noqa: F401
            schema,  # noqa: F401  (registers the OpenAPI extension)
        )
