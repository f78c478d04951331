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
        from celery.signals import task_postrun, task_prerun
        from django.contrib.auth.signals import user_logged_in
        from oauth2_provider.models import get_application_model

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            dispatch,
            tasks,  # noqa: F401  (registers the Celery tasks that ciba.dispatch sends by name)
        )
        from .assurance import stamp_session_auth_time
        from .callbacks import inline
        from .polling import stamps
        from .views import schema  # noqa: F401  (registers the OpenAPI extension)

        # A client's secret, mode or existence changed: polls must be re-verified at once.
        stamps.connect(get_application_model())
        # A tap's auth_time is when its session signed in (ciba.assurance).
        user_logged_in.connect(stamp_session_auth_time, dispatch_uid="ciba.assurance.session_auth_time")
        # Workers keep their database connection (dispatch.WORKER_SETTINGS) and replace it
        # around each task when it is unusable or obsolete, as around a web request.
        task_prerun.connect(dispatch.refresh_connections, weak=False, dispatch_uid="ciba.dispatch.prerun")
        task_postrun.connect(dispatch.refresh_connections, weak=False, dispatch_uid="ciba.dispatch.postrun")
        # A callback is sent by the process that committed it, right after the commit, when
        # one of its sender threads is free; otherwise by a worker (ciba.callbacks.inline).
        dispatch.run_here(dispatch.DELIVER_CALLBACK, inline.submit, lease=inline.lease)
