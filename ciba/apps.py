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
        from django.db.models.signals import post_delete, post_save, pre_save
        from oauth2_provider.models import get_application_model

        from . import (
            checks,  # noqa: F401
            schema,  # noqa: F401  (registers the OpenAPI extension)
        )
        from .poll_state import forget_client, forget_client_before_save

        # A client's secret, mode or existence changed: polls must be re-verified at once.
        application = get_application_model()
        pre_save.connect(forget_client_before_save, sender=application, dispatch_uid="ciba.poll_state.pre")
        post_save.connect(forget_client, sender=application, dispatch_uid="ciba.poll_state.save")
        post_delete.connect(forget_client, sender=application, dispatch_uid="ciba.poll_state.delete")
