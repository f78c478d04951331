from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CibaConfig(AppConfig):
    name = "ciba"
    label = "ciba"
    verbose_name = _("CIBA")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Start-up work only registers things: nothing here touches the database or the
        # network. Modules that need the app registry are imported here, once it is ready.
        from oauth2_provider.models import get_application_model

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            tasks,  # noqa: F401  (registers the Celery tasks that ciba.dispatch sends by name)
        )
        from .polling import stamps
        from .views import schema  # noqa: F401  (registers the OpenAPI extension)

        # A client's secret, mode or existence changed: polls must be re-verified at once.
        stamps.connect(get_application_model())
