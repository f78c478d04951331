"""The types this server accepts, built once from ``CIBA["AUTHORIZATION_DETAILS_TYPES"]``.

Each entry maps a type name to the dotted path of a ``DetailType`` subclass, or to
``{"class": dotted path, **options}``. Building them checks the configuration (an unknown
class, a class that is not a ``DetailType``, a wrong option, a broken schema): all are
``ImproperlyConfigured``, raised the first time a request needs the registry, never a client's
error. The registry is rebuilt when ``settings.CIBA`` changes (``override_settings`` in tests).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import SETTINGS_NAME, ciba_settings
from .base import DetailType

_SETTING = "CIBA['AUTHORIZATION_DETAILS_TYPES']"
_lock = threading.Lock()
_types: dict[str, DetailType] | None = None


def types() -> dict[str, DetailType]:
    """Every registered type by name, in the setting's order."""
    global _types
    built = _types
    if built is None:
        with _lock:
            built = _types if _types is not None else build(ciba_settings.AUTHORIZATION_DETAILS_TYPES)
            _types = built
    return built


def build(setting: Any) -> dict[str, DetailType]:
    """The types ``setting`` describes (also what the system check would run)."""
    if not isinstance(setting, dict):
        raise ImproperlyConfigured(f"{_SETTING} must be a dict of type name to class path.")
    built: dict[str, DetailType] = {}
    for name, entry in setting.items():
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(f"{_SETTING}: every type name is a non-empty string.")
        if isinstance(entry, str):
            path, options = entry, {}
        elif isinstance(entry, dict) and isinstance(entry.get("class"), str):
            options = {key: value for key, value in entry.items() if key != "class"}
            path = entry["class"]
        else:
            raise ImproperlyConfigured(
                f"{_SETTING}[{name!r}] must be a dotted path or a dict with a 'class' dotted path."
            )
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{_SETTING}[{name!r}]: cannot import {path!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, DetailType)):
            raise ImproperlyConfigured(
                f"{_SETTING}[{name!r}]: {path!r} is not a ciba.authorization_details.DetailType subclass."
            )
        built[name] = cls(name, **options)
    return built


@receiver(setting_changed)
def _forget_types(*, setting: str, **kwargs: Any) -> None:
    global _types
    if setting == SETTINGS_NAME:
        with _lock:
            _types = None
