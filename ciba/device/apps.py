"""The app config; its only start-up work is registering the device page's system checks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CibaDeviceConfig(AppConfig):
    name = "ciba.device"
    label = "ciba_device"
    verbose_name = _("CIBA device")

    def ready(self) -> None:
        from . import system_checks  # noqa: F401  (registers the system checks)
