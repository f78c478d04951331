"""``check --deploy``: development conveniences that must not reach production.

Automated approval, plain-http and private-network callbacks, a per-process cache and eager Celery
make development easy and production unsafe or fragile. The deploy checks of a subject of its own
live with that subject (``client_secrets``, ``bounded_dependencies``, ``workers``).
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks

from ..conf import ciba_settings
from ..replay import cache_is_shared
from .codes import Codes


@checks.register(checks.Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if ciba_settings.raw("AUTOMATED_APPROVAL_SECRET"):
        messages.append(
            checks.Error(
                "Automated approval is on: anyone with its URL approves or denies any pending CIBA "
                "request in its user's name.",
                hint='Remove CIBA["AUTOMATED_APPROVAL_SECRET"]; it exists for conformance-suite runs only.',
                id=Codes.AUTOMATED_APPROVAL,
            )
        )
    if ciba_settings.raw("CALLBACK_ALLOW_HTTP"):
        messages.append(
            checks.Warning(
                "Client notification endpoints and jwks_uri may use plain http: tokens and notification "
                "bearer tokens would cross the network unencrypted (CIBA §10.2 requires TLS).",
                hint='Set CIBA["CALLBACK_ALLOW_HTTP"] = False in production.',
                id=Codes.CALLBACK_ALLOW_HTTP,
            )
        )
    if ciba_settings.raw("CALLBACK_ALLOW_PRIVATE_NETWORKS"):
        messages.append(
            checks.Warning(
                "Callbacks may target loopback, private and link-local addresses, which lets a client "
                "make this server call internal services (SSRF).",
                hint='Set CIBA["CALLBACK_ALLOW_PRIVATE_NETWORKS"] = False in production.',
                id=Codes.CALLBACK_ALLOW_PRIVATE,
            )
        )
    if not cache_is_shared():
        messages.append(
            checks.Warning(
                "The default cache is per process: the failed-authentication guard, the backchannel "
                "throttle and the verified-secret cache each count in their own process, so several "
                "processes allow several times the configured rates (single-use jti records fall back "
                "to the database and stay correct).",
                hint='Point CACHES["default"] at a Redis every process shares.',
                id=Codes.PER_PROCESS_CACHE,
            )
        )
    if _celery_is_eager():
        messages.append(
            checks.Warning(
                "Celery runs tasks eagerly: device notifications and client callbacks would run inside "
                "web requests, without retries with backoff or durability.",
                hint="Set CELERY_TASK_ALWAYS_EAGER = False (or task_always_eager on your Celery app) and "
                "run Celery workers with a broker.",
                id=Codes.CELERY_EAGER,
            )
        )
    return messages


def _celery_is_eager() -> bool:
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return True
    return bool(current_app.conf.task_always_eager)
