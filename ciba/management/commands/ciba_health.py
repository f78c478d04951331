"""``manage.py ciba_health``: is anything sweeping the outboxes? For alerting (docs/operations.md).

Exit status 0 when the sweep of each outbox (callbacks, device notifications) completed within
``--max-age`` seconds (``CIBA["SWEEP_MAX_AGE"]``) and no outbox entry has been overdue for
longer; 1 otherwise, with a line saying what is wrong. One line per sweep and per outbox (the
expiry sweep's is for information: a late expiry changes no answer, and sites may run it from
cron with ``expire_ciba_requests``):

    ok    sweep callbacks: completed 12 s ago
    FAIL  sweep notifications: last completed 412 s ago (more than 300 s)
    ok    outbox callbacks: 3 pending, 0 overdue
    FAIL  outbox notifications: 17 overdue, the oldest due 380 s ago (more than 300 s)

Sweeps record when they complete in the shared cache (``ciba.dispatch.last_sweeps``). The
outbox lines come from the database (``ciba.outbox_engine.Outbox.backlog``), so the check
still means something when the cache was flushed or cannot be read: an entry due longer than
the limit and held by no worker is work nobody is handing out. The command only reads; it is
safe to run every minute from cron, a systemd timer or a monitoring agent.

With ``--queues`` it also asks the running workers which queues they consume (Celery's
``inspect().active_queues()``, waiting ``--timeout`` seconds) and compares them with the queues
ciba's tasks are routed to (``CELERY_TASK_ROUTES`` through Celery's own router, so the default
queue and every form of routes count). A routed queue that no worker consumes is where pings
and notifications wait for ever, with nothing in a log: a worker started without ``-Q``
consumes the default queue only.

    ok    queue ciba-callbacks (ciba.deliver_callback): consumed by callbacks@web1
    FAIL  queue ciba-notify (ciba.notify_due_devices, …): no worker consumes it; …
    FAIL  queues no worker consumes: ciba-notify (start a worker with -Q ciba-notify, …)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ciba import device_outbox, dispatch
from ciba.callbacks import outbox as callback_outbox
from ciba.conf import ciba_settings
from ciba.outbox_engine import Outbox

#: The sweeps whose age is alerted on: the outboxes', which nothing else recovers, by the name
#: their sweep records under.
OUTBOXES: dict[str, Outbox] = {
    outbox.name: outbox for outbox in (callback_outbox.OUTBOX, device_outbox.OUTBOX)
}


#: Seconds ``--queues`` waits for the broker, and then for the workers' answers.
QUEUES_TIMEOUT = 2.0


@dataclass
class Line:
    ok: bool
    text: str
    label: str = ""

    def __str__(self) -> str:
        return f"{self.label or ('ok' if self.ok else 'FAIL'):<5} {self.text}"


class Command(BaseCommand):
    help = (
        "Exit 1 when a sweep of the outboxes has not completed within --max-age seconds, or an outbox "
        "entry has been overdue longer; one line per sweep and outbox."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-age",
            type=float,
            default=None,
            help='Seconds (default: CIBA["SWEEP_MAX_AGE"]). Use several times the beat schedule (30 s).',
        )
        parser.add_argument(
            "--queues",
            action="store_true",
            help="Also ask the running workers which queues they consume, and fail naming every queue "
            "ciba's tasks are routed to that no worker consumes (or when no worker answers).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=QUEUES_TIMEOUT,
            help=f"Seconds --queues waits for the broker, then for the workers (default {QUEUES_TIMEOUT:g}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        max_age = options["max_age"] if options["max_age"] is not None else ciba_settings.SWEEP_MAX_AGE
        lines = [*sweep_lines(max_age), *outbox_lines(max_age)]
        if options["queues"]:
            lines += queue_lines(current_app, options["timeout"])
        for line in lines:
            (self.stdout if line.ok else self.stderr).write(str(line))
        if not all(line.ok for line in lines):
            raise SystemExit(1)


def sweep_lines(max_age: float) -> list[Line]:
    """One line per sweep: when it last completed, from the shared cache."""
    try:
        done = dispatch.last_sweeps()
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not crash
        return [
            Line(False, f"sweeps: the cache could not be read ({type(exc).__name__}); see the outboxes below")
        ]
    now = time.time()
    lines = []
    for name, when in done.items():
        if name not in OUTBOXES:  # expiry: late expiry changes no answer (polls compare times)
            said = (
                "never completed (run from cron?)"
                if when is None
                else f"completed {now - float(when):.0f} s ago"
            )
            lines.append(Line(True, f"sweep {name}: {said}", "info"))
            continue
        if when is None:
            lines.append(
                Line(
                    False,
                    f"sweep {name}: never completed (is beat running, and a worker consuming ciba-sweeps?)",
                )
            )
            continue
        age = now - float(when)
        if age > max_age:
            lines.append(
                Line(False, f"sweep {name}: last completed {age:.0f} s ago (more than {max_age:g} s)")
            )
        else:
            lines.append(Line(True, f"sweep {name}: completed {age:.0f} s ago"))
    return lines


def outbox_lines(max_age: float) -> list[Line]:
    """One line per outbox: how much is pending, and what has been overdue too long (unleased)."""
    now = timezone.now()
    limit = now - timedelta(seconds=max_age)
    lines = []
    for name, outbox in OUTBOXES.items():
        pending, overdue, oldest = outbox.backlog(now, limit)
        if not overdue:
            lines.append(Line(True, f"outbox {name}: {pending} pending, 0 overdue"))
            continue
        age = (now - oldest).total_seconds()
        lines.append(
            Line(
                False,
                f"outbox {name}: {pending} pending, {overdue} overdue, the oldest due {age:.0f} s ago "
                f"(more than {max_age:g} s, held by no worker)",
            )
        )
    return lines


# --- which queues the workers consume ------------------------------------------------------


def ciba_tasks(app: Any) -> list[str]:
    """The tasks ciba sends (``ciba.dispatch``): the slow lane's only while it is on, and the
    sweep of both outboxes, kept for old schedules, only when the beat schedule names it."""
    scheduled = {
        entry.get("task") for entry in (app.conf.beat_schedule or {}).values() if isinstance(entry, dict)
    }
    slow_lane = ciba_settings.CALLBACK_SLOW_LANE_AFTER != 0
    return [
        task
        for task in dispatch.SUBJECTS
        if (task != dispatch.DELIVER_CALLBACK_SLOW or slow_lane)
        and (task != dispatch.SWEEP_CALLBACKS or task in scheduled)
    ]


@dataclass
class Routes:
    """Where ciba's tasks go: each queue with its tasks, and the tasks Celery would not send."""

    queues: dict[str, list[str]]
    unsendable: dict[str, str]


def routed_queues(app: Any) -> Routes:
    """Each queue ciba's tasks go to, with those tasks, as Celery routes them when sending:
    ``task_routes`` in any of its forms (names, globs, router functions), else the default
    queue. A task Celery refuses to route (a queue neither declared in ``task_queues`` nor
    created, with ``task_create_missing_queues`` off) is kept apart with the reason."""
    app.amqp.flush_routes()  # the routes and queues as configured now, not as first read
    router = app.amqp.Router(app.amqp.Queues(app.conf.task_queues))
    routes = Routes({}, {})
    for task in ciba_tasks(app):
        try:
            queue = router.route({}, task)["queue"].name
        except Exception as exc:  # noqa: BLE001 - QueueNotFound, or a site's router failing
            routes.unsendable[task] = f"{type(exc).__name__}: {exc}"
            continue
        routes.queues.setdefault(queue, []).append(task)
    return routes


def worker_queues(app: Any, timeout: float) -> dict[str, list[str]]:
    """The queues each worker that answers within ``timeout`` consumes, by worker name (empty:
    none answered). Raises the broker's error when it cannot be reached within ``timeout``:
    the connection is tried once, never with the workers' reconnect-for-ever settings."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        answers = app.control.inspect(timeout=timeout, connection=connection).active_queues() or {}
    return {worker: [queue["name"] for queue in queues or ()] for worker, queues in answers.items()}


def queue_lines(app: Any, timeout: float) -> list[Line]:
    """The ``--queues`` lines: ``app``'s routes against what its running workers consume."""
    if app.conf.task_always_eager:
        return [
            Line(True, "queues: tasks run in the process that sends them (CELERY_TASK_ALWAYS_EAGER)", "info")
        ]
    routes = routed_queues(app)
    lines = [
        Line(False, f"task {task}: Celery cannot send it ({reason})")
        for task, reason in routes.unsendable.items()
    ]
    try:
        consumed = worker_queues(app, timeout)
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not crash
        return [
            *lines,
            Line(
                False,
                f"queues: the broker cannot be reached ({type(exc).__name__}: {exc}); no worker can be asked "
                f"about {', '.join(routes.queues)}",
            ),
        ]
    return [*lines, *compare_queues(routes.queues, consumed, timeout)]


def compare_queues(
    routed: dict[str, list[str]], consumed: dict[str, list[str]], timeout: float
) -> list[Line]:
    """One line per routed queue with the workers consuming it, and one naming every queue no
    worker consumes; ``consumed`` maps each worker that answered to its queues."""
    if not consumed:
        return [
            Line(
                False,
                f"queues: no worker answered within {timeout:g} s (is one running, on this broker?); "
                f"nothing consumes {', '.join(routed)}",
            )
        ]
    lines = []
    unconsumed = []
    for queue, tasks in routed.items():
        workers = sorted(worker for worker, queues in consumed.items() if queue in queues)
        about = f"queue {queue} ({', '.join(tasks)})"
        if workers:
            lines.append(Line(True, f"{about}: consumed by {', '.join(workers)}"))
        else:
            unconsumed.append(queue)
            lines.append(Line(False, f"{about}: no worker consumes it; its tasks wait there for ever"))
    if unconsumed:
        names = ", ".join(unconsumed)
        lines.append(
            Line(
                False,
                f"queues no worker consumes: {names} (start a worker with -Q {','.join(unconsumed)}, or add "
                f"{'them' if len(unconsumed) > 1 else 'it'} to a worker's -Q; docs/operations.md)",
            )
        )
    return lines
