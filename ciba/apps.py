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
        from django.contrib.auth.signals import user_logged_in
        from oauth2_provider.models import get_application_model

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            tasks,  # noqa: F401  (registers the Celery tasks that ciba.dispatch sends by name)
        )
        from .assurance import stamp_session_auth_time
        from .polling import stamps
        from .views import schema  # noqa: F401  (registers the OpenAPI extension)

        # A client's secret, mode or existence changed: polls must be re-verified at once.
        stamps.connect(get_application_model())
        # A tap's auth_time is when its session signed in (ciba.assurance).
        user_logged_in.connect(stamp_session_auth_time, dispatch_uid="ciba.assurance.session_auth_time")
