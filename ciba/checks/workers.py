"""Celery workers: the dispatch breaker, the sweeps, the callbacks' slow lane and the broker.

Their settings take seconds; a site that routes ciba's tasks must route the slow lane's too, or
its slow callbacks wait in a queue nobody reads; a route to a queue Celery will not create makes
every send of that task fail; and at deploy, a Redis broker without
``ciba.dispatch.broker_settings`` can stop, or idle, the worker that runs the sweeps during a
broker outage. Whether a Celery app is loaded at all is ``site_setup``'s check.

Whether some worker consumes each routed queue is not decidable from the settings: the queues
a worker consumes are its command line's (``-Q``), so ``manage.py ciba_health --queues`` asks
the running workers instead.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from celery.exceptions import QueueNotFound
from django.core import checks

from .. import dispatch
from ..conf import ciba_settings
from .codes import Codes
from .values import is_number

#: Worker and sweep settings: (key, may be None, must be above 0).
_WORKER_NUMBERS = (
    ("DISPATCH_BREAKER_SECONDS", False, False),
    ("SWEEP_MAX_AGE", False, True),
    ("CALLBACK_SLOW_LANE_AFTER", True, False),
    ("CALLBACK_SLOW_LANE_SECONDS", False, True),
    ("CALLBACK_KEEP_ALIVE", False, False),
)


@checks.register()
def check_worker_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The breaker, the sweep-age alert and the slow lane take seconds, the callback sender
    threads a count; and a site that routes ciba's tasks must route the slow lane's too, or its
    callbacks wait in a queue nobody reads."""
    messages: list[checks.CheckMessage] = []
    for key, nullable, positive in _WORKER_NUMBERS:
        value = ciba_settings.raw(key)
        if value is None and nullable:
            continue
        if not is_number(value) or value < 0 or (positive and value == 0):
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] is {value!r}.',
                    hint=f"Use a number of seconds{' above' if positive else ' of'} 0"
                    f"{'' if positive else ' or more'}{' (or None)' if nullable else ''}; docs/settings.md.",
                    id=Codes.WORKER_SETTINGS,
                )
            )
    senders = ciba_settings.raw("CALLBACK_INLINE_SENDERS")
    if isinstance(senders, bool) or not isinstance(senders, int) or senders < 0:
        messages.append(
            checks.Error(
                f'CIBA["CALLBACK_INLINE_SENDERS"] is {senders!r}.',
                hint="Use a whole number of threads of 0 or more (0: every callback is sent by the "
                "workers); docs/settings.md.",
                id=Codes.WORKER_SETTINGS,
            )
        )
    routes = current_app.conf.task_routes
    slow_lane = ciba_settings.raw("CALLBACK_SLOW_LANE_AFTER") != 0
    if (
        slow_lane
        and isinstance(routes, dict)
        and "ciba.deliver_callback" in routes
        and "ciba.deliver_callback_slow" not in routes
    ):
        messages.append(
            checks.Warning(
                "CELERY_TASK_ROUTES routes ciba.deliver_callback but not ciba.deliver_callback_slow: "
                "callbacks to endpoints in the slow lane go to Celery's default queue, which routed "
                "workers may not read.",
                hint="Use CELERY_TASK_ROUTES = ciba.dispatch.TASK_ROUTES (it routes the slow lane to "
                '"ciba-callbacks-slow") and run a worker for that queue (docs/operations.md), or set '
                'CIBA["CALLBACK_SLOW_LANE_AFTER"] = 0.',
                id=Codes.SLOW_LANE_UNROUTED,
            )
        )
    return messages


@checks.register()
def check_task_queues(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A ciba task routed to a queue that ``task_queues`` does not declare, while
    ``task_create_missing_queues`` is off: Celery refuses every send of it (``QueueNotFound``),
    so the outbox rows wait for ever and each attempt only logs an error."""
    app = current_app
    if app.conf.task_always_eager or app.conf.task_create_missing_queues:
        return []
    app.amqp.flush_routes()
    router = app.amqp.Router(app.amqp.Queues(app.conf.task_queues))
    refused = []
    for task in dispatch.SUBJECTS:
        try:
            router.route({}, task)
        except QueueNotFound as exc:
            refused.append(f"{task} ({exc})")
    if not refused:
        return []
    return [
        checks.Error(
            "Celery cannot send these ciba tasks: their queue is not in CELERY_TASK_QUEUES and "
            f"CELERY_TASK_CREATE_MISSING_QUEUES is off: {'; '.join(refused)}.",
            hint="Declare ciba's queues (ciba.dispatch.QUEUES) in CELERY_TASK_QUEUES, or route the tasks to "
            "queues it declares; then run workers for them (docs/operations.md).",
            id=Codes.TASK_QUEUE_UNDECLARED,
        )
    ]


@checks.register(deploy=True)
def check_broker_hardening(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A Redis broker without ``ciba.dispatch.broker_settings``: an outage can end the worker
    that runs the sweeps, or leave it alive but idle (docs/operations.md)."""
    conf = current_app.conf
    if conf.task_always_eager or not str(conf.broker_url or "").startswith(("redis://", "rediss://")):
        return []
    transport = conf.broker_transport
    missing = []
    if transport != "ciba.backends.redis_broker.Transport" and not (
        isinstance(transport, type) and transport.__module__ == "ciba.backends.redis_broker"
    ):
        missing.append("broker_transport")
    if conf.broker_connection_max_retries is not None:
        missing.append("broker_connection_max_retries")
    if not missing:
        return []
    return [
        checks.Warning(
            f"The Redis broker is used without ciba's outage settings ({', '.join(missing)}): a broker "
            "outage can stop the worker that runs the sweeps, or leave it running but fetching nothing.",
            hint="globals().update(ciba.dispatch.broker_settings(CELERY_BROKER_URL)) in the settings, "
            "after CELERY_BROKER_URL (docs/operations.md).",
            id=Codes.BROKER_NOT_HARDENED,
        )
    ]
