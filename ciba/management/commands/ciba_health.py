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
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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

    def handle(self, *args: Any, **options: Any) -> None:
        max_age = options["max_age"] if options["max_age"] is not None else ciba_settings.SWEEP_MAX_AGE
        lines = [*sweep_lines(max_age), *outbox_lines(max_age)]
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
